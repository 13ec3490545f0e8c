/* PickleBuffer: a wrapper of a buffer-providing object for pickle
   protocol 5 (PEP 574). */

#ifndef Py_PICKLEBUFOBJECT_H
#define Py_PICKLEBUFOBJECT_H
#ifdef __cplusplus
extern "C" {
#endif

#ifndef Py_LIMITED_API

PyAPI_DATA(PyTypeObject) PyPickleBuffer_Type;

#define PyPickleBuffer_Check(op) (Py_TYPE(op) == &PyPickleBuffer_Type)

/* Create a PickleBuffer that holds a buffer view of OBJ.
   Return a new reference, or NULL with an exception set. */
PyAPI_FUNC(PyObject *) PyPickleBuffer_FromObject(PyObject *obj);

/* Return the buffer view held by the PickleBuffer PICKLEBUF (a borrowed
   pointer, valid as long as PICKLEBUF is neither released nor destroyed).
   Return NULL with ValueError set if it was released, or with TypeError set
   if PICKLEBUF is not a PickleBuffer. */
PyAPI_FUNC(const Py_buffer *) PyPickleBuffer_GetBuffer(PyObject *picklebuf);

/* Release the buffer view held by PICKLEBUF.  Releasing twice is allowed.
   Return 0 on success, -1 with TypeError set if PICKLEBUF is not a
   PickleBuffer. */
PyAPI_FUNC(int) PyPickleBuffer_Release(PyObject *picklebuf);

#endif /* !Py_LIMITED_API */

#ifdef __cplusplus
}
#endif
#endif /* !Py_PICKLEBUFOBJECT_H */
