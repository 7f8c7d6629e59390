/* SPDX-License-Identifier: GPL-3.0-or-later */
/*
 * Simulated libnvidia-ml.so.1 for the gpuops.mig tests.
 *
 * Every exported NVML symbol is a thin trampoline into the Python engine
 * (tests/nvml_sim/migsim_engine.py), reached through the CPython C API.
 * The library links no libpython symbol: the C API functions it uses are looked
 * up at the first NVML call. In a Python process (pynvml) they bind to the running
 * interpreter. In any other process (a Go or C program such as nvidia-ctk that
 * dlopens libnvidia-ml.so.1) the library loads libpython itself ($MIGSIM_LIBPYTHON,
 * else the one it was built against, else libpython3.so), starts an embedded
 * interpreter without signal handlers, and releases the GIL so that calls from any
 * thread take it in turn. Only stable-ABI functions are used, so one build serves
 * any Python 3.8+.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <libgen.h>
#include <limits.h>

#define EXPORT __attribute__((visibility("default")))
#define NVML_ERROR_UNKNOWN 999
#ifndef MIGSIM_LIBPYTHON
#define MIGSIM_LIBPYTHON "libpython3.so"
#endif

typedef struct _object PyObject;
typedef int PyGILState_STATE;

/* The CPython C API functions the shim calls, resolved at run time. */
static struct {
    int (*IsInitialized)(void);
    void (*InitializeEx)(int);
    void *(*EvalSaveThread)(void);
    PyGILState_STATE (*GILStateEnsure)(void);
    void (*GILStateRelease)(PyGILState_STATE);
    PyObject *(*ImportGetModuleDict)(void);
    PyObject *(*ImportImportModule)(const char *);
    PyObject *(*DictGetItemString)(PyObject *, const char *);
    int (*DictSetItemString)(PyObject *, const char *, PyObject *);
    int (*DictDelItemString)(PyObject *, const char *);
    PyObject *(*ObjectGetAttrString)(PyObject *, const char *);
    PyObject *(*ObjectCallMethod)(PyObject *, const char *, const char *, ...);
    PyObject *(*ObjectCallFunction)(PyObject *, const char *, ...);
    long (*LongAsLong)(PyObject *);
    PyObject *(*ErrOccurred)(void);
    void (*ErrPrint)(void);
    void (*IncRef)(PyObject *);
    void (*DecRef)(PyObject *);
} py;

static PyObject *dispatch_fn = NULL;
static pthread_once_t py_once = PTHREAD_ONCE_INIT;
static int py_ready = 0;

#define XDECREF(o) do { if ((o) != NULL) py.DecRef(o); } while (0)

static int resolve_python(void *lib)
{
#define SYM(field, name) if ((*(void **)&py.field = dlsym(lib, name)) == NULL) return -1
    SYM(IsInitialized, "Py_IsInitialized");
    SYM(InitializeEx, "Py_InitializeEx");
    SYM(EvalSaveThread, "PyEval_SaveThread");
    SYM(GILStateEnsure, "PyGILState_Ensure");
    SYM(GILStateRelease, "PyGILState_Release");
    SYM(ImportGetModuleDict, "PyImport_GetModuleDict");
    SYM(ImportImportModule, "PyImport_ImportModule");
    SYM(DictGetItemString, "PyDict_GetItemString");
    SYM(DictSetItemString, "PyDict_SetItemString");
    SYM(DictDelItemString, "PyDict_DelItemString");
    SYM(ObjectGetAttrString, "PyObject_GetAttrString");
    SYM(ObjectCallMethod, "PyObject_CallMethod");
    SYM(ObjectCallFunction, "PyObject_CallFunction");
    SYM(LongAsLong, "PyLong_AsLong");
    SYM(ErrOccurred, "PyErr_Occurred");
    SYM(ErrPrint, "PyErr_Print");
    SYM(IncRef, "Py_IncRef");
    SYM(DecRef, "Py_DecRef");
#undef SYM
    return 0;
}

/* Bind to the interpreter of this process, or start an embedded one. */
static void start_python(void)
{
    const char *want = getenv("MIGSIM_LIBPYTHON");
    void *lib;

    if (resolve_python(RTLD_DEFAULT) == 0 && py.IsInitialized()) {
        py_ready = 1;
        return;
    }
    lib = dlopen(want != NULL && want[0] != '\0' ? want : MIGSIM_LIBPYTHON, RTLD_NOW | RTLD_GLOBAL);
    if (lib == NULL && (want == NULL || want[0] == '\0'))
        lib = dlopen("libpython3.so", RTLD_NOW | RTLD_GLOBAL);
    if (lib == NULL) {
        fprintf(stderr, "migsim: no Python interpreter in this process and libpython cannot be loaded: %s\n", dlerror());
        return;
    }
    if (resolve_python(lib) != 0) {
        fprintf(stderr, "migsim: the loaded libpython lacks a C API function the simulator needs\n");
        return;
    }
    if (!py.IsInitialized()) {
        py.InitializeEx(0); /* no signal handlers: the host program keeps its own */
        py.EvalSaveThread(); /* release the GIL; every call takes it with PyGILState_Ensure */
    }
    py_ready = 1;
}

static int load_engine(void)
{
    Dl_info info;
    char so_path[PATH_MAX];
    char engine[PATH_MAX + 64];
    PyObject *sysmods, *mod = NULL, *util = NULL, *spec = NULL, *loader = NULL, *res = NULL;
    const char *override = getenv("MIGSIM_ENGINE");

    if (override != NULL && override[0] != '\0') {
        snprintf(engine, sizeof(engine), "%s", override);
    } else {
        if (dladdr((void *)&load_engine, &info) == 0 || info.dli_fname == NULL)
            return -1;
        if (realpath(info.dli_fname, so_path) == NULL)
            snprintf(so_path, sizeof(so_path), "%s", info.dli_fname);
        /* <nvml_sim>/build/libnvidia-ml.so.1 -> <nvml_sim>/migsim_engine.py */
        char *build_dir = dirname(so_path);
        char *sim_dir = dirname(build_dir);
        snprintf(engine, sizeof(engine), "%s/migsim_engine.py", sim_dir);
    }
    sysmods = py.ImportGetModuleDict();
    mod = py.DictGetItemString(sysmods, "_migsim_engine"); /* borrowed */
    if (mod != NULL) {
        py.IncRef(mod);
    } else {
        util = py.ImportImportModule("importlib.util");
        if (util == NULL)
            goto fail;
        spec = py.ObjectCallMethod(util, "spec_from_file_location", "ss", "_migsim_engine", engine);
        if (spec == NULL)
            goto fail;
        mod = py.ObjectCallMethod(util, "module_from_spec", "O", spec);
        if (mod == NULL)
            goto fail;
        if (py.DictSetItemString(sysmods, "_migsim_engine", mod) != 0)
            goto fail;
        loader = py.ObjectGetAttrString(spec, "loader");
        if (loader == NULL)
            goto fail;
        res = py.ObjectCallMethod(loader, "exec_module", "O", mod);
        if (res == NULL) {
            py.DictDelItemString(sysmods, "_migsim_engine");
            goto fail;
        }
    }
    dispatch_fn = py.ObjectGetAttrString(mod, "dispatch");
fail:
    XDECREF(res);
    XDECREF(loader);
    XDECREF(spec);
    XDECREF(util);
    XDECREF(mod);
    return dispatch_fn == NULL ? -1 : 0;
}

static int call_engine(const char *name, uint64_t a0, uint64_t a1, uint64_t a2, uint64_t a3, uint64_t a4)
{
    PyGILState_STATE g;
    PyObject *r;
    long rc = NVML_ERROR_UNKNOWN;

    pthread_once(&py_once, start_python);
    if (!py_ready || !py.IsInitialized())
        return NVML_ERROR_UNKNOWN;
    g = py.GILStateEnsure();
    if (dispatch_fn == NULL && load_engine() != 0) {
        if (py.ErrOccurred())
            py.ErrPrint();
        fprintf(stderr, "migsim: cannot load the simulator engine\n");
        py.GILStateRelease(g);
        return NVML_ERROR_UNKNOWN;
    }
    r = py.ObjectCallFunction(dispatch_fn, "sKKKKK", name, (unsigned long long)a0, (unsigned long long)a1,
                              (unsigned long long)a2, (unsigned long long)a3, (unsigned long long)a4);
    if (r == NULL) {
        py.ErrPrint();
    } else {
        rc = py.LongAsLong(r);
        if (rc == -1 && py.ErrOccurred()) {
            py.ErrPrint();
            rc = NVML_ERROR_UNKNOWN;
        }
        py.DecRef(r);
    }
    py.GILStateRelease(g);
    return (int)rc;
}

#define A(x) ((uint64_t)(uintptr_t)(x))
#define F0(n) EXPORT int n(void) { return call_engine(#n, 0, 0, 0, 0, 0); }
#define F1(n, t0) EXPORT int n(t0 a) { return call_engine(#n, A(a), 0, 0, 0, 0); }
#define F2(n, t0, t1) EXPORT int n(t0 a, t1 b) { return call_engine(#n, A(a), A(b), 0, 0, 0); }
#define F3(n, t0, t1, t2) EXPORT int n(t0 a, t1 b, t2 c) { return call_engine(#n, A(a), A(b), A(c), 0, 0); }
#define F4(n, t0, t1, t2, t3) EXPORT int n(t0 a, t1 b, t2 c, t3 d) { return call_engine(#n, A(a), A(b), A(c), A(d), 0); }

typedef void *P;
typedef unsigned int U;

/* init / system */
F0(nvmlInit)
F0(nvmlInit_v2)
F1(nvmlInitWithFlags, U)
F0(nvmlShutdown)
F2(nvmlSystemGetDriverVersion, P, U)
F2(nvmlSystemGetNVMLVersion, P, U)
F1(nvmlSystemGetCudaDriverVersion, P)
F1(nvmlSystemGetCudaDriverVersion_v2, P)
/* device enumeration and identity */
F1(nvmlDeviceGetCount, P)
F1(nvmlDeviceGetCount_v2, P)
F2(nvmlDeviceGetHandleByIndex, U, P)
F2(nvmlDeviceGetHandleByIndex_v2, U, P)
F2(nvmlDeviceGetHandleByUUID, P, P)
F2(nvmlDeviceGetHandleByPciBusId, P, P)
F2(nvmlDeviceGetHandleByPciBusId_v2, P, P)
F3(nvmlDeviceGetName, P, P, U)
F3(nvmlDeviceGetUUID, P, P, U)
F3(nvmlDeviceGetBoardPartNumber, P, P, U)
F3(nvmlDeviceGetVbiosVersion, P, P, U)
F3(nvmlDeviceGetSerial, P, P, U)
F2(nvmlDeviceGetIndex, P, P)
F2(nvmlDeviceGetMinorNumber, P, P)
F2(nvmlDeviceGetPciInfo, P, P)
F2(nvmlDeviceGetPciInfo_v2, P, P)
F2(nvmlDeviceGetPciInfo_v3, P, P)
F2(nvmlDeviceGetMemoryInfo, P, P)
F2(nvmlDeviceGetMemoryInfo_v2, P, P)
F2(nvmlDeviceGetArchitecture, P, P)
F3(nvmlDeviceGetCudaComputeCapability, P, P, P)
F2(nvmlDeviceGetPersistenceMode, P, P)
F2(nvmlDeviceGetComputeMode, P, P)
F2(nvmlDeviceGetNumGpuCores, P, P)
F2(nvmlDeviceGetVirtualizationMode, P, P)
F2(nvmlDeviceGetAttributes_v2, P, P)
F3(nvmlDeviceGetFieldValues, P, int, P)
F3(nvmlDeviceGetComputeRunningProcesses, P, P, P)
F3(nvmlDeviceGetComputeRunningProcesses_v2, P, P, P)
F3(nvmlDeviceGetComputeRunningProcesses_v3, P, P, P)
/* MIG mode and MIG devices */
F3(nvmlDeviceGetMigMode, P, P, P)
F3(nvmlDeviceSetMigMode, P, U, P)
F2(nvmlDeviceGetMaxMigDeviceCount, P, P)
F3(nvmlDeviceGetMigDeviceHandleByIndex, P, U, P)
F2(nvmlDeviceIsMigDeviceHandle, P, P)
F2(nvmlDeviceGetGpuInstanceId, P, P)
F2(nvmlDeviceGetComputeInstanceId, P, P)
F2(nvmlDeviceGetDeviceHandleFromMigDeviceHandle, P, P)
/* GPU instances */
F3(nvmlDeviceGetGpuInstanceProfileInfo, P, U, P)
F3(nvmlDeviceGetGpuInstanceProfileInfoV, P, U, P)
F3(nvmlDeviceGetGpuInstanceProfileInfoByIdV, P, U, P)
F4(nvmlDeviceGetGpuInstancePossiblePlacements, P, U, P, P)
F4(nvmlDeviceGetGpuInstancePossiblePlacements_v2, P, U, P, P)
F3(nvmlDeviceGetGpuInstanceRemainingCapacity, P, U, P)
F3(nvmlDeviceCreateGpuInstance, P, U, P)
F4(nvmlDeviceCreateGpuInstanceWithPlacement, P, U, P, P)
F4(nvmlDeviceGetGpuInstances, P, U, P, P)
F3(nvmlDeviceGetGpuInstanceById, P, U, P)
F1(nvmlGpuInstanceDestroy, P)
F2(nvmlGpuInstanceGetInfo, P, P)
/* compute instances */
F4(nvmlGpuInstanceGetComputeInstanceProfileInfo, P, U, U, P)
F4(nvmlGpuInstanceGetComputeInstanceProfileInfoV, P, U, U, P)
F3(nvmlGpuInstanceGetComputeInstanceRemainingCapacity, P, U, P)
F4(nvmlGpuInstanceGetComputeInstancePossiblePlacements, P, U, P, P)
F3(nvmlGpuInstanceCreateComputeInstance, P, U, P)
F4(nvmlGpuInstanceCreateComputeInstanceWithPlacement, P, U, P, P)
F4(nvmlGpuInstanceGetComputeInstances, P, U, P, P)
F3(nvmlGpuInstanceGetComputeInstanceById, P, U, P)
F1(nvmlComputeInstanceDestroy, P)
F2(nvmlComputeInstanceGetInfo, P, P)
F2(nvmlComputeInstanceGetInfo_v2, P, P)

/* nvmlErrorString returns static text; the call is still counted by the engine. */
struct err_text { int code; const char *text; };
static const struct err_text ERR_TEXT[] = {
    {0, "Success"}, {1, "Uninitialized"}, {2, "Invalid Argument"}, {3, "Not Supported"},
    {4, "Insufficient Permissions"}, {5, "Already Initialized"}, {6, "Not Found"}, {7, "Insufficient Size"},
    {8, "Insufficient External Power"}, {9, "Driver Not Loaded"}, {10, "Timeout"}, {11, "Interrupt request issue"},
    {12, "NVML Shared Library Not Found"}, {13, "Function Not Found"}, {14, "Corrupted infoROM"}, {15, "GPU is lost"},
    {16, "GPU requires restart"}, {17, "GPU access blocked by the operating system"},
    {18, "RM has detected an NVML/RM version mismatch"}, {19, "In use by another client"}, {20, "Insufficient Memory"},
    {21, "No data"}, {22, "Requested vgpu operation is not available because ECC is enabled"},
    {23, "Insufficient Resources"}, {24, "Frequency not supported"}, {25, "Argument version mismatch"},
    {26, "Deprecated"}, {27, "Not Ready"}, {28, "GPU not found"}, {29, "Invalid state"}, {999, "Unknown Error"},
};

EXPORT const char *nvmlErrorString(int result)
{
    size_t i;
    call_engine("nvmlErrorString", (uint64_t)(unsigned int)result, 0, 0, 0, 0);
    for (i = 0; i < sizeof(ERR_TEXT) / sizeof(ERR_TEXT[0]); i++)
        if (ERR_TEXT[i].code == result)
            return ERR_TEXT[i].text;
    return "Unknown Error";
}
