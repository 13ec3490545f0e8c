/* PickleBuffer: hand the memory of a buffer exporter to pickle protocol 5
   (PEP 574) without copying it. */

#include "Python.h"
#include "picklebufobject.h"
#include <stddef.h>

typedef struct {
    PyObject_HEAD
    /* Export taken from the wrapped object when the PickleBuffer was made.
       view.obj is NULL once the PickleBuffer has been released. */
    Py_buffer view;
    PyObject *weakreflist;
} PyPickleBufferObject;

#define PICKLEBUFFER_RELEASED(self) ((self)->view.obj == NULL)

static int
picklebuf_check_released(PyPickleBufferObject *self)
{
    if (PICKLEBUFFER_RELEASED(self)) {
        PyErr_SetString(PyExc_ValueError,
                        "operation forbidden on released PickleBuffer object");
        return -1;
    }
    return 0;
}


/* The PickleBuffer type */

PyObject *
PyPickleBuffer_FromObject(PyObject *obj)
{
    PyPickleBufferObject *self;

    self = PyObject_GC_New(PyPickleBufferObject, &PyPickleBuffer_Type);
    if (self == NULL) {
        return NULL;
    }
    self->view.obj = NULL;
    self->weakreflist = NULL;
    /* Ask for the most general view: the exporter decides whether it is
       writable, and keeps its own format, shape and strides. */
    if (PyObject_GetBuffer(obj, &self->view, PyBUF_FULL_RO) < 0) {
        Py_DECREF(self);
        return NULL;
    }
    PyObject_GC_Track(self);
    return (PyObject *)self;
}

const Py_buffer *
PyPickleBuffer_GetBuffer(PyObject *obj)
{
    PyPickleBufferObject *self = (PyPickleBufferObject *)obj;

    if (!PyPickleBuffer_Check(obj)) {
        PyErr_Format(PyExc_TypeError,
                     "expected a PickleBuffer, got %.200s",
                     Py_TYPE(obj)->tp_name);
        return NULL;
    }
    if (picklebuf_check_released(self) < 0) {
        return NULL;
    }
    return &self->view;
}

int
PyPickleBuffer_Release(PyObject *obj)
{
    PyPickleBufferObject *self = (PyPickleBufferObject *)obj;

    if (!PyPickleBuffer_Check(obj)) {
        PyErr_Format(PyExc_TypeError,
                     "expected a PickleBuffer, got %.200s",
                     Py_TYPE(obj)->tp_name);
        return -1;
    }
    PyBuffer_Release(&self->view);
    return 0;
}

static PyObject *
picklebuf_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    PyObject *obj;

    if (!_PyArg_NoKeywords("PickleBuffer", kwds)) {
        return NULL;
    }
    if (!PyArg_UnpackTuple(args, "PickleBuffer", 1, 1, &obj)) {
        return NULL;
    }
    return PyPickleBuffer_FromObject(obj);
}

static int
picklebuf_traverse(PyPickleBufferObject *self, visitproc visit, void *arg)
{
    Py_VISIT(self->view.obj);
    return 0;
}

static int
picklebuf_clear(PyPickleBufferObject *self)
{
    PyBuffer_Release(&self->view);
    return 0;
}

static void
picklebuf_dealloc(PyPickleBufferObject *self)
{
    PyObject_GC_UnTrack(self);
    if (self->weakreflist != NULL) {
        PyObject_ClearWeakRefs((PyObject *)self);
    }
    PyBuffer_Release(&self->view);
    PyObject_GC_Del(self);
}

/* Every consumer gets its export from the wrapped object itself: the
   exporter counts it, refuses writable views of read-only memory, and the
   view stays valid when the PickleBuffer is released before it. */
static int
picklebuf_getbuf(PyPickleBufferObject *self, Py_buffer *view, int flags)
{
    if (picklebuf_check_released(self) < 0) {
        return -1;
    }
    return PyObject_GetBuffer(self->view.obj, view, flags);
}

static PyBufferProcs picklebuf_as_buffer = {
    (getbufferproc)picklebuf_getbuf,
    NULL,
};

PyDoc_STRVAR(picklebuf_raw_doc,
"raw($self, /)\n--\n\
\n\
Return a one-dimensional memoryview of unsigned bytes over the memory\n\
wrapped by this PickleBuffer.\n\
\n\
BufferError is raised when that memory is not contiguous.");

/* raw() is a memoryview of the wrapped object itself, with its own export
   of the memory (valid after release()) and the object as its .obj, so
   that a consumer handed the raw view can still recognise the object.  It
   is then flattened to one dimension of unsigned bytes.  A memoryview can
   only cast C-contiguous views of native formats, so the flat layout is
   written into the view directly; its shape and strides arrays have room
   for it whenever it has a dimension, and a zero-dimensional view, always
   C-contiguous, is cast. */
static PyObject *
picklebuf_raw(PyPickleBufferObject *self, PyObject *Py_UNUSED(ignored))
{
    PyObject *result;
    Py_buffer *view;

    if (picklebuf_check_released(self) < 0) {
        return NULL;
    }
    result = PyMemoryView_FromObject(self->view.obj);
    if (result == NULL) {
        return NULL;
    }
    view = PyMemoryView_GET_BUFFER(result);
    if (!PyBuffer_IsContiguous(view, 'A')) {
        Py_DECREF(result);
        PyErr_SetString(PyExc_BufferError,
                        "cannot give a raw view of non-contiguous memory");
        return NULL;
    }
    if (view->ndim == 0) {
        Py_SETREF(result, PyObject_CallMethod(result, "cast", "s", "B"));
        return result;
    }
    view->format = "B";
    view->itemsize = 1;
    view->ndim = 1;
    view->shape[0] = view->len;
    view->strides[0] = 1;
    view->suboffsets = NULL;
    ((PyMemoryViewObject *)result)->flags =
        _Py_MEMORYVIEW_C | _Py_MEMORYVIEW_FORTRAN;
    return result;
}

PyDoc_STRVAR(picklebuf_release_doc,
"release($self, /)\n--\n\
\n\
Release the buffer of the wrapped object.\n\
\n\
Views obtained before stay valid; using the PickleBuffer afterwards raises\n\
ValueError.  Releasing again does nothing.");

static PyObject *
picklebuf_release(PyPickleBufferObject *self, PyObject *Py_UNUSED(ignored))
{
    PyBuffer_Release(&self->view);
    Py_RETURN_NONE;
}

static PyMethodDef picklebuf_methods[] = {
    {"raw", (PyCFunction)picklebuf_raw, METH_NOARGS, picklebuf_raw_doc},
    {"release", (PyCFunction)picklebuf_release, METH_NOARGS,
     picklebuf_release_doc},
    {NULL, NULL}
};

PyDoc_STRVAR(picklebuf_doc,
"PickleBuffer(buffer, /)\n--\n\
\n\
Wrap an object that supports the buffer protocol so that pickle protocol 5\n\
can serialize its memory in-band or hand it out-of-band to a\n\
buffer_callback without copying it.");

PyTypeObject PyPickleBuffer_Type = {
    PyVarObject_HEAD_INIT(NULL, 0)
    "pickle.PickleBuffer",                      /* tp_name */
    sizeof(PyPickleBufferObject),               /* tp_basicsize */
    0,                                          /* tp_itemsize */
    (destructor)picklebuf_dealloc,              /* tp_dealloc */
    0,                                          /* tp_print */
    0,                                          /* tp_getattr */
    0,                                          /* tp_setattr */
    0,                                          /* tp_reserved */
    0,                                          /* tp_repr */
    0,                                          /* tp_as_number */
    0,                                          /* tp_as_sequence */
    0,                                          /* tp_as_mapping */
    0,                                          /* tp_hash */
    0,                                          /* tp_call */
    0,                                          /* tp_str */
    0,                                          /* tp_getattro */
    0,                                          /* tp_setattro */
    &picklebuf_as_buffer,                       /* tp_as_buffer */
    Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,    /* tp_flags */
    picklebuf_doc,                              /* tp_doc */
    (traverseproc)picklebuf_traverse,           /* tp_traverse */
    (inquiry)picklebuf_clear,                   /* tp_clear */
    0,                                          /* tp_richcompare */
    offsetof(PyPickleBufferObject, weakreflist), /* tp_weaklistoffset */
    0,                                          /* tp_iter */
    0,                                          /* tp_iternext */
    picklebuf_methods,                          /* tp_methods */
    0,                                          /* tp_members */
    0,                                          /* tp_getset */
    0,                                          /* tp_base */
    0,                                          /* tp_dict */
    0,                                          /* tp_descr_get */
    0,                                          /* tp_descr_set */
    0,                                          /* tp_dictoffset */
    0,                                          /* tp_init */
    0,                                          /* tp_alloc */
    picklebuf_new,                              /* tp_new */
};
