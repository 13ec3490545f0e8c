/* The PickleBuffer C API for a _pickle built outside the interpreter.

   The overlay build compiles the patched Modules/_pickle.c against the
   headers of an installed CPython 3.7, whose core has no PickleBuffer.  The
   type then lives in the _picklebuffer extension module, which lends its C
   API through a capsule.  The overlay build force-includes this header
   (gcc -include) so that _pickle.c's uses of the API, written for the core
   type, resolve to that capsule on first use. */

#ifndef ZEROCOPY_PICKLEBUFFER_API_H
#define ZEROCOPY_PICKLEBUFFER_API_H

#include "Python.h"

typedef struct {
    PyTypeObject *type;
    PyObject *(*from_object)(PyObject *obj);
    const Py_buffer *(*get_buffer)(PyObject *picklebuf);
    int (*release)(PyObject *picklebuf);
} ZeroCopyPickleBufferAPI;

#define ZEROCOPY_PICKLEBUFFER_CAPSULE "_picklebuffer._C_API"

#ifndef ZEROCOPY_PICKLEBUFFER_PROVIDER

static const ZeroCopyPickleBufferAPI *
zerocopy_picklebuffer_api(void)
{
    static const ZeroCopyPickleBufferAPI *api = NULL;

    if (api == NULL) {
        api = (const ZeroCopyPickleBufferAPI *)PyCapsule_Import(
            ZEROCOPY_PICKLEBUFFER_CAPSULE, 0);
        if (api == NULL) {
            /* The macros below cannot report an error to their callers;
               the module is installed next to _pickle, so this means a
               broken installation. */
            Py_FatalError("_pickle cannot import the PickleBuffer C API "
                          "of the _picklebuffer module");
        }
    }
    return api;
}

#define PyPickleBuffer_Type (*zerocopy_picklebuffer_api()->type)
#define PyPickleBuffer_Check(op) \
    (Py_TYPE(op) == zerocopy_picklebuffer_api()->type)
#define PyPickleBuffer_FromObject(obj) \
    (zerocopy_picklebuffer_api()->from_object(obj))
#define PyPickleBuffer_GetBuffer(obj) \
    (zerocopy_picklebuffer_api()->get_buffer(obj))
#define PyPickleBuffer_Release(obj) \
    (zerocopy_picklebuffer_api()->release(obj))

#endif /* !ZEROCOPY_PICKLEBUFFER_PROVIDER */
#endif /* !ZEROCOPY_PICKLEBUFFER_API_H */
