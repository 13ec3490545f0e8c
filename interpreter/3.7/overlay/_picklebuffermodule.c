/* _picklebuffer: the core additions of the series, as an extension module.

   An overlay interpreter is a copy of an installed CPython 3.7, whose core
   lacks two things the patched pickle relies on: the PickleBuffer type and
   memoryview.toreadonly().  This module is compiled together with the
   series' own Objects/picklebufobject.c.  It publishes the type, lends its
   C API to a patched _pickle through a capsule (see picklebuffer_api.h),
   and gives memoryview the toreadonly() method the full build has. */

#define ZEROCOPY_PICKLEBUFFER_PROVIDER
#include "Python.h"
#include "picklebufobject.h"
#include "picklebuffer_api.h"

static const ZeroCopyPickleBufferAPI picklebuffer_api = {
    &PyPickleBuffer_Type,
    PyPickleBuffer_FromObject,
    PyPickleBuffer_GetBuffer,
    PyPickleBuffer_Release,
};

/* memoryview.toreadonly(): a new view registered with the same managed
   buffer, with the write permission cleared (as in the series' patch of
   Objects/memoryobject.c). */
static PyObject *
memory_toreadonly(PyObject *self, PyObject *Py_UNUSED(ignored))
{
    PyObject *view = PyMemoryView_FromObject(self);

    if (view == NULL) {
        return NULL;
    }
    ((PyMemoryViewObject *)view)->view.readonly = 1;
    return view;
}

static PyMethodDef toreadonly_def = {
    "toreadonly", (PyCFunction)memory_toreadonly, METH_NOARGS,
    PyDoc_STR("toreadonly($self, /)\n--\n\n"
              "Return a readonly view on the same memory.")
};

static int
add_toreadonly(void)
{
    PyObject *dict = PyMemoryView_Type.tp_dict;
    PyObject *descr;
    int result;

    if (PyDict_GetItemString(dict, "toreadonly") != NULL) {
        return 0;
    }
    descr = PyDescr_NewMethod(&PyMemoryView_Type, &toreadonly_def);
    if (descr == NULL) {
        return -1;
    }
    result = PyDict_SetItemString(dict, "toreadonly", descr);
    Py_DECREF(descr);
    PyType_Modified(&PyMemoryView_Type);
    return result;
}

static struct PyModuleDef picklebuffer_module = {
    PyModuleDef_HEAD_INIT,
    "_picklebuffer",
    PyDoc_STR("PickleBuffer for interpreters whose core lacks it."),
    -1,
    NULL,
};

PyMODINIT_FUNC
PyInit__picklebuffer(void)
{
    PyObject *module, *capsule;

    if (PyType_Ready(&PyPickleBuffer_Type) < 0 || add_toreadonly() < 0) {
        return NULL;
    }
    module = PyModule_Create(&picklebuffer_module);
    if (module == NULL) {
        return NULL;
    }
    Py_INCREF(&PyPickleBuffer_Type);
    if (PyModule_AddObject(module, "PickleBuffer",
                           (PyObject *)&PyPickleBuffer_Type) < 0) {
        Py_DECREF(&PyPickleBuffer_Type);
        goto error;
    }
    capsule = PyCapsule_New((void *)&picklebuffer_api,
                            ZEROCOPY_PICKLEBUFFER_CAPSULE, NULL);
    if (capsule == NULL || PyModule_AddObject(module, "_C_API", capsule) < 0) {
        Py_XDECREF(capsule);
        goto error;
    }
    return module;

error:
    Py_DECREF(module);
    return NULL;
}
