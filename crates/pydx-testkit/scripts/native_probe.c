/*
 * Native code with known function names, for the tests of `--native`.
 *
 * Built twice by the tests: as a plain shared library that Python loads
 * with ctypes (no Python headers needed), and with PYDX_PROBE_EXTENSION as
 * an extension module, against each interpreter's headers. Each function
 * is kept out of line and calls its callee as a real call (the tests build
 * with -fno-optimize-sibling-calls), so that every name below shows on the
 * stack.
 */
#ifdef PYDX_PROBE_EXTENSION
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#endif
#include <time.h>

/* Burns CPU for `rounds` iterations. */
__attribute__((noinline)) double probe_spin(long rounds)
{
    volatile double sum = 0;
    for (long i = 0; i < rounds; i++) {
        sum += (double)i * 0.5;
    }
    return sum;
}

/* Spins like probe_spin, in a function with internal linkage: only a full
 * symbol table, or the separate debug file of a stripped build, names it. */
__attribute__((noinline)) static double probe_spin_internal(long rounds)
{
    volatile double sum = 0;
    for (long i = 0; i < rounds; i++) {
        sum += (double)i * 0.25;
    }
    return sum;
}

/* Calls probe_spin_internal. */
__attribute__((noinline)) double probe_spin_hidden(long rounds)
{
    return probe_spin_internal(rounds) + 1.0;
}

/* Calls `callback` `times` times: native code calling back into Python. */
__attribute__((noinline)) void probe_call_back(void (*callback)(void), long times)
{
    for (long i = 0; i < times; i++) {
        callback();
    }
}

/* Sleeps `milliseconds` in the kernel (nanosleep). */
__attribute__((noinline)) void probe_nap(long milliseconds)
{
    struct timespec wait = {milliseconds / 1000, (milliseconds % 1000) * 1000000L};
    nanosleep(&wait, NULL);
}

#ifdef PYDX_PROBE_EXTENSION
/* native_probe.nap(milliseconds): sleeps without the GIL. */
__attribute__((noinline)) static PyObject *probe_nap_method(PyObject *module, PyObject *milliseconds)
{
    long n = PyLong_AsLong(milliseconds);
    if (n == -1 && PyErr_Occurred()) {
        return NULL;
    }
    Py_BEGIN_ALLOW_THREADS
    probe_nap(n);
    Py_END_ALLOW_THREADS
    Py_RETURN_NONE;
}

/* native_probe.spin(rounds) */
__attribute__((noinline)) static PyObject *probe_spin_method(PyObject *module, PyObject *rounds)
{
    long n = PyLong_AsLong(rounds);
    if (n == -1 && PyErr_Occurred()) {
        return NULL;
    }
    double sum = probe_spin(n);
    return PyFloat_FromDouble(sum);
}

/* native_probe.call_back(function): calls `function()` from C. */
__attribute__((noinline)) static PyObject *probe_call_python(PyObject *module, PyObject *function)
{
    PyObject *result = PyObject_CallObject(function, NULL);
    if (result == NULL) {
        return NULL;
    }
    return result;
}

static PyMethodDef probe_methods[] = {
    {"spin", probe_spin_method, METH_O, NULL},
    {"call_back", probe_call_python, METH_O, NULL},
    {"nap", probe_nap_method, METH_O, NULL},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef probe_module = {
    PyModuleDef_HEAD_INIT, "native_probe", NULL, -1, probe_methods,
};

PyMODINIT_FUNC PyInit_native_probe(void)
{
    return PyModule_Create(&probe_module);
}
#endif
