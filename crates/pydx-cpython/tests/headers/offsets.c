/* Prints, as "name value" lines, the offsets and sizes pydx's built-in
 * layout tables (crates/pydx-cpython/src/layout.rs) claim for one CPython
 * 3.8-3.12, taken from that version's own headers. Compiled against each
 * test interpreter's include directory by tests/headers.rs. */
#define Py_BUILD_CORE 1
#include <Python.h>
#include <frameobject.h>
#include <stddef.h>
#include <stdio.h>
#if PY_VERSION_HEX < 0x03090000
#include "internal/pycore_pystate.h"
#else
#include "internal/pycore_interp.h"
#include "internal/pycore_runtime.h"
#endif
#if PY_VERSION_HEX >= 0x030B0000
#include "internal/pycore_frame.h"
#endif

#define F(name, value) printf("%s %zu\n", name, (size_t)(value))

int main(void) {
    F("runtime_interpreters_head", offsetof(_PyRuntimeState, interpreters.head));
#if PY_VERSION_HEX >= 0x03090000
    F("runtime_finalizing", offsetof(_PyRuntimeState, _finalizing));
#else
    F("runtime_finalizing", offsetof(_PyRuntimeState, finalizing));
#endif
#if PY_VERSION_HEX < 0x030C0000
    F("runtime_gil_locked", offsetof(_PyRuntimeState, ceval.gil.locked));
    F("runtime_gil_holder", offsetof(_PyRuntimeState, ceval.gil.last_holder));
#else
    F("interp_ceval_gil", offsetof(PyInterpreterState, ceval.gil));
    F("gil_locked", offsetof(struct _gil_runtime_state, locked));
    F("gil_holder", offsetof(struct _gil_runtime_state, last_holder));
#endif
    F("interp_next", offsetof(PyInterpreterState, next));
#if PY_VERSION_HEX >= 0x030B0000
    F("interp_threads_head", offsetof(PyInterpreterState, threads.head));
#else
    F("interp_threads_head", offsetof(PyInterpreterState, tstate_head));
#endif
#if PY_VERSION_HEX >= 0x030C0000
    F("interp_modules", offsetof(PyInterpreterState, imports.modules));
#else
    F("interp_modules", offsetof(PyInterpreterState, modules));
#endif
    F("tstate_next", offsetof(PyThreadState, next));
    F("tstate_thread_id", offsetof(PyThreadState, thread_id));
#if PY_VERSION_HEX >= 0x030B0000
    F("tstate_native_thread_id", offsetof(PyThreadState, native_thread_id));
    F("tstate_cframe", offsetof(PyThreadState, cframe));
    F("cframe_current_frame", offsetof(_PyCFrame, current_frame));
    F("tstate_datastack_chunk", offsetof(PyThreadState, datastack_chunk));
    F("frame_previous", offsetof(_PyInterpreterFrame, previous));
    F("frame_code", offsetof(_PyInterpreterFrame, f_code));
    F("frame_instr", offsetof(_PyInterpreterFrame, prev_instr));
    F("frame_owner", offsetof(_PyInterpreterFrame, owner));
#if PY_VERSION_HEX < 0x030C0000
    F("frame_is_entry", offsetof(_PyInterpreterFrame, is_entry));
#endif
    F("frame_localsplus", offsetof(_PyInterpreterFrame, localsplus));
    F("code_qualname", offsetof(PyCodeObject, co_qualname));
    F("code_linetable", offsetof(PyCodeObject, co_linetable));
    F("code_code_adaptive", offsetof(PyCodeObject, co_code_adaptive));
    F("code_varnames", offsetof(PyCodeObject, co_localsplusnames));
    F("code_localspluskinds", offsetof(PyCodeObject, co_localspluskinds));
#else
    F("tstate_unique_id", offsetof(PyThreadState, id));
    F("tstate_frame", offsetof(PyThreadState, frame));
    F("frame_previous", offsetof(PyFrameObject, f_back));
    F("frame_code", offsetof(PyFrameObject, f_code));
    F("frame_instr", offsetof(PyFrameObject, f_lasti));
#if PY_VERSION_HEX >= 0x030A0000
    F("frame_state", offsetof(PyFrameObject, f_state));
    F("code_linetable", offsetof(PyCodeObject, co_linetable));
#else
    F("frame_executing", offsetof(PyFrameObject, f_executing));
    F("code_linetable", offsetof(PyCodeObject, co_lnotab));
#endif
    F("frame_localsplus", offsetof(PyFrameObject, f_localsplus));
    F("code_code", offsetof(PyCodeObject, co_code));
    F("code_varnames", offsetof(PyCodeObject, co_varnames));
    F("code_nlocals", offsetof(PyCodeObject, co_nlocals));
    F("code_cellvars", offsetof(PyCodeObject, co_cellvars));
    F("code_freevars", offsetof(PyCodeObject, co_freevars));
#endif
    F("code_filename", offsetof(PyCodeObject, co_filename));
    F("code_name", offsetof(PyCodeObject, co_name));
    F("code_firstlineno", offsetof(PyCodeObject, co_firstlineno));
    F("code_argcount", offsetof(PyCodeObject, co_argcount));
    F("code_flags", offsetof(PyCodeObject, co_flags));
    F("type_flags", offsetof(PyTypeObject, tp_flags));
    F("type_basicsize", offsetof(PyTypeObject, tp_basicsize));
    F("type_dictoffset", offsetof(PyTypeObject, tp_dictoffset));
    F("heap_type_cached_keys", offsetof(PyHeapTypeObject, ht_cached_keys));
    F("unicode_ascii_data", sizeof(PyASCIIObject));
    F("unicode_compact_data", sizeof(PyCompactUnicodeObject));
    F("tuple_items", offsetof(PyTupleObject, ob_item));
    F("function_closure", offsetof(PyFunctionObject, func_closure));
    F("dict_used", offsetof(PyDictObject, ma_used));
    F("dict_keys", offsetof(PyDictObject, ma_keys));
    F("dict_values", offsetof(PyDictObject, ma_values));
    F("set_used", offsetof(PySetObject, used));
    F("set_mask", offsetof(PySetObject, mask));
    F("set_table", offsetof(PySetObject, table));
    return 0;
}
