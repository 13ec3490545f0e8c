"""Tests for the PickleBuffer type of PEP 574.

Pickling and unpickling through PickleBuffer is tested in pickletester.
"""

import array
import gc
import io
import struct
import sys
import unittest
import weakref

from pickle import PickleBuffer

try:
    import _testbuffer
except ImportError:
    _testbuffer = None


class WeakBytearray(bytearray):
    """A bytearray that can be referenced weakly and carry attributes."""


def fortran_matrix():
    # A 3x4 matrix of int32 stored column by column: contiguous, but not in
    # C order, so a memoryview of it cannot be cast to bytes.
    return _testbuffer.ndarray(list(range(12)), shape=[3, 4], format='i',
                               flags=_testbuffer.ND_FORTRAN)


class PickleBufferTest(unittest.TestCase):

    def assert_same_view(self, pb, base):
        with memoryview(pb) as got, memoryview(base) as expected:
            self.assertEqual(got.format, expected.format)
            self.assertEqual(got.itemsize, expected.itemsize)
            self.assertEqual(got.shape, expected.shape)
            self.assertEqual(got.strides, expected.strides)
            self.assertEqual(got.readonly, expected.readonly)
            self.assertEqual(got.tobytes(), expected.tobytes())

    def test_constructor_arguments(self):
        self.assertRaises(TypeError, PickleBuffer)
        self.assertRaises(TypeError, PickleBuffer, b"x", b"y")
        self.assertRaises(TypeError, PickleBuffer, buffer=b"x")
        for not_a_buffer in (None, 42, "text", [1, 2], object()):
            with self.subTest(obj=not_a_buffer):
                self.assertRaises(TypeError, PickleBuffer, not_a_buffer)

    def test_not_subclassable(self):
        with self.assertRaises(TypeError):
            class Derived(PickleBuffer):
                pass

    def test_reexports_the_wrapped_buffer(self):
        bases = [b"immutable", bytearray(b"mutable"), memoryview(b"view"),
                 array.array('q', [-1, 2, 3 ** 30]),
                 memoryview(bytearray(range(24))).cast('H', [3, 4])]
        for base in bases:
            with self.subTest(base=base):
                self.assert_same_view(PickleBuffer(base), base)

    def test_readonly_stays_readonly(self):
        pb = PickleBuffer(b"frozen")
        with memoryview(pb) as m:
            self.assertTrue(m.readonly)
            with self.assertRaises(TypeError):
                m[0] = 0
        # A consumer that needs writable memory is refused.
        with self.assertRaises(TypeError):
            io.BytesIO(b"thawed").readinto(pb)
        self.assertEqual(bytes(memoryview(pb)), b"frozen")

    def test_writable_writes_through(self):
        base = bytearray(b"abc")
        pb = PickleBuffer(base)
        with memoryview(pb) as m:
            self.assertFalse(m.readonly)
            m[1] = ord("Z")
        self.assertEqual(base, b"aZc")
        with pb.raw() as raw:
            raw[2] = ord("Y")
        self.assertEqual(base, b"aZY")

    def test_raw_is_flat_bytes(self):
        base = array.array('i', [1, -2, 3])
        with PickleBuffer(base).raw() as raw:
            self.assertEqual(raw.format, 'B')
            self.assertEqual(raw.itemsize, 1)
            self.assertEqual(raw.ndim, 1)
            self.assertEqual(raw.shape, (base.itemsize * 3,))
            self.assertEqual(raw.tobytes(), base.tobytes())
            self.assertFalse(raw.readonly)
        with PickleBuffer(b"xyz").raw() as raw:
            self.assertTrue(raw.readonly)
            self.assertEqual(raw.tobytes(), b"xyz")

    def test_raw_of_multidimensional_c_order(self):
        with memoryview(bytearray(range(12))).cast('B', [3, 4]) as base:
            with PickleBuffer(base).raw() as raw:
                self.assertEqual(raw.shape, (12,))
                self.assertEqual(raw.tobytes(), bytes(range(12)))

    @unittest.skipIf(_testbuffer is None, "needs _testbuffer")
    def test_raw_of_fortran_order(self):
        matrix = fortran_matrix()
        with memoryview(matrix) as m:
            self.assertTrue(m.f_contiguous)
            self.assertFalse(m.c_contiguous)
        # _testbuffer lays the items out in memory in the order given.
        memory = struct.pack('=12i', *range(12))
        with PickleBuffer(matrix).raw() as raw:
            self.assertEqual(raw.shape, (len(memory),))
            self.assertEqual(raw.tobytes(), memory)

    def test_raw_reexports_the_wrapped_object(self):
        # The raw view is a view of the object itself: a consumer can tell
        # which object it is handed, and the object counts the export.
        bases = [b"immutable", bytearray(b"mutable"),
                 array.array('h', [1, 2, 3])]
        if _testbuffer is not None:
            bases += [fortran_matrix(),
                      _testbuffer.ndarray([1, 2], shape=[2], format='<q'),
                      _testbuffer.ndarray(7, shape=[], format='B')]
        for base in bases:
            with self.subTest(base=base):
                pb = PickleBuffer(base)
                with pb.raw() as raw, memoryview(pb) as view:
                    self.assertIs(raw.obj, base)
                    self.assertIs(view.obj, base)
                    with memoryview(raw) as again:
                        self.assertIs(again.obj, base)
                    self.assertEqual(raw.format, 'B')
                    self.assertEqual(raw.ndim, 1)
                    self.assertTrue(raw.c_contiguous)
                    self.assertTrue(raw.f_contiguous)
                    self.assertEqual(raw.nbytes, view.nbytes)
                    with memoryview(base) as expected:
                        self.assertEqual(raw.readonly, expected.readonly)
                        # test_raw_of_fortran_order checks the bytes of
                        # the other order.
                        if expected.c_contiguous:
                            self.assertEqual(raw.tobytes(),
                                             expected.tobytes())

    def test_raw_counts_as_an_export(self):
        base = bytearray(b"fixed size")
        pb = PickleBuffer(base)
        raw = pb.raw()
        pb.release()
        with self.assertRaises(BufferError):
            base.extend(b"!")
        raw.release()
        base.extend(b"!")
        self.assertEqual(base, b"fixed size!")

    def test_raw_of_non_contiguous_fails(self):
        strided = memoryview(bytearray(b"a-b-c-"))[::2]
        pb = PickleBuffer(strided)
        self.assertRaises(BufferError, pb.raw)
        # The buffer itself can still be used.
        self.assert_same_view(pb, strided)

    def test_release(self):
        base = bytearray(b"grow me")
        pb = PickleBuffer(base)
        # The export held by the PickleBuffer pins the bytearray's size.
        self.assertRaises(BufferError, base.extend, b"!")
        pb.release()
        base.extend(b"!")
        self.assertEqual(base, b"grow me!")
        for use in (pb.raw, lambda: memoryview(pb)):
            with self.assertRaises(ValueError):
                use()
        # Releasing again is harmless.
        pb.release()

    def test_views_outlive_release(self):
        base = bytearray(b"survivor")
        pb = PickleBuffer(base)
        raw = pb.raw()
        view = memoryview(pb)
        pb.release()
        self.assertEqual(raw.tobytes(), b"survivor")
        self.assertEqual(view.tobytes(), b"survivor")
        # They still hold exports of their own.
        self.assertRaises(BufferError, base.extend, b"!")
        raw.release()
        view.release()
        base.extend(b"!")

    def test_raw_outlives_everything(self):
        base = WeakBytearray(b"kept alive")
        base_ref = weakref.ref(base)
        pb = PickleBuffer(base)
        raw = pb.raw()
        del base, pb
        gc.collect()
        self.assertIsNotNone(base_ref())
        self.assertEqual(raw.tobytes(), b"kept alive")
        raw.release()
        del raw
        gc.collect()
        self.assertIsNone(base_ref())

    def test_holds_a_reference(self):
        base = WeakBytearray(b"data")
        refs = sys.getrefcount(base)
        pb = PickleBuffer(base)
        self.assertGreater(sys.getrefcount(base), refs)
        pb.release()
        self.assertEqual(sys.getrefcount(base), refs)
        pb = PickleBuffer(base)
        del pb
        self.assertEqual(sys.getrefcount(base), refs)

    def test_reference_cycle_is_collected(self):
        base = WeakBytearray(b"cycle")
        base.pb = PickleBuffer(base)
        base_ref = weakref.ref(base)
        del base
        gc.collect()
        self.assertIsNone(base_ref())

    def test_weakref(self):
        pb = PickleBuffer(b"weak")
        ref = weakref.ref(pb)
        self.assertIs(ref(), pb)
        del pb
        self.assertIsNone(ref())

    def test_not_copyable_by_reduction(self):
        import copy
        self.assertRaises(TypeError, copy.copy, PickleBuffer(b"x"))


if __name__ == "__main__":
    unittest.main()
