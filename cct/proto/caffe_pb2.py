"""Caffe's protobuf message classes, built from proto/caffe.proto (the schema of BVLC's caffe_pb2).

setup.py compiles proto/caffe.proto into the serialized descriptor ``caffe_descriptor.pb`` beside this
file; here it is loaded into a private descriptor pool. protoc's generated module would do the same but
pins the protobuf runtime to protoc's own major version, and cct supports the protobuf 6.x and 7.x
runtimes alike. The module exposes what the generated one does: every message class, every top-level
enum (``Phase``) and its values (``TRAIN``, ``TEST``), and ``DESCRIPTOR``.
"""
import os

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from google.protobuf.internal import enum_type_wrapper

_DESCRIPTOR_PATH = os.path.join(os.path.dirname(__file__), 'caffe_descriptor.pb')


def _load():
    try:
        with open(_DESCRIPTOR_PATH, 'rb') as f:
            file_set = descriptor_pb2.FileDescriptorSet.FromString(f.read())
    except FileNotFoundError:
        raise ImportError(
            '%s is missing: it is compiled from proto/caffe.proto when cct is installed; '
            'run `pip install -e .` in the cct checkout' % _DESCRIPTOR_PATH) from None
    pool = descriptor_pool.DescriptorPool()
    for file_proto in file_set.file:
        pool.Add(file_proto)
    file_desc = pool.FindFileByName('caffe.proto')
    classes = message_factory.GetMessageClassesForFiles(['caffe.proto'], pool)
    names = {'DESCRIPTOR': file_desc}
    for name, desc in file_desc.message_types_by_name.items():
        names[name] = classes[desc.full_name]
    for name, desc in file_desc.enum_types_by_name.items():
        names[name] = enum_type_wrapper.EnumTypeWrapper(desc)
        for value in desc.values:
            names[value.name] = value.number
    return names


globals().update(_load())
del _load
