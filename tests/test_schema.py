"""proto/caffe.proto is Caffe's schema: every message, field (name, number, label, type, default,
packed) and enum value of ../shared/caffe/caffe_proto_fields.tsv, and nothing else, as loaded by
cct.proto.caffe_pb2."""
import os

import numpy as np
import pytest
from google.protobuf import descriptor, descriptor_pb2

from cct.proto import caffe_pb2

FD = descriptor.FieldDescriptor
_SCALAR_TYPES = {
    FD.TYPE_DOUBLE: 'double', FD.TYPE_FLOAT: 'float', FD.TYPE_INT64: 'int64',
    FD.TYPE_UINT64: 'uint64', FD.TYPE_INT32: 'int32', FD.TYPE_UINT32: 'uint32',
    FD.TYPE_BOOL: 'bool', FD.TYPE_STRING: 'string', FD.TYPE_BYTES: 'bytes',
}


def _label(field):
    # protobuf 7 dropped FieldDescriptor.label; these two properties say the same.
    return 'repeated' if field.is_repeated else 'required' if field.is_required else 'optional'


def read_tsv(path):
    """The table's rows as dicts keyed by its header (kind, scope, name, number, ...)."""
    with open(path) as f:
        lines = [line.rstrip('\n') for line in f if line.strip() and not line.startswith('#')]
    header = lines[0].split('\t')
    return [dict(zip(header, line.split('\t') + [''] * (len(header) - line.count('\t') - 1)))
            for line in lines[1:]]


@pytest.fixture(scope='module')
def rows(shared):
    return read_tsv(os.path.join(shared, 'caffe', 'caffe_proto_fields.tsv'))


def _type_name(field):
    if field.type == FD.TYPE_MESSAGE:
        return field.message_type.full_name
    if field.type == FD.TYPE_ENUM:
        return field.enum_type.full_name
    return _SCALAR_TYPES[field.type]


def _default_text(field):
    """The default as the table writes it ('' when the field has no explicit default)."""
    if not field.has_default_value or field.is_repeated:
        return ''
    value = field.default_value
    if field.type == FD.TYPE_ENUM:
        return field.enum_type.values_by_number[value].name
    if field.type == FD.TYPE_BOOL:
        return 'true' if value else 'false'
    return value


def _same_default(expected, field):
    actual = _default_text(field)
    if expected == '' or actual == '':
        return expected == actual
    if field.type in (FD.TYPE_FLOAT, FD.TYPE_DOUBLE):
        dtype = np.float32 if field.type == FD.TYPE_FLOAT else np.float64
        return dtype(expected) == dtype(actual)
    if field.type in (FD.TYPE_INT32, FD.TYPE_INT64, FD.TYPE_UINT32, FD.TYPE_UINT64):
        return int(expected) == actual
    return expected == actual


def _enum(scope):
    """The enum descriptor for a table scope: 'Phase' or 'Message.Enum'."""
    if '.' not in scope:
        return caffe_pb2.DESCRIPTOR.enum_types_by_name[scope]
    message, enum = scope.split('.')
    return caffe_pb2.DESCRIPTOR.message_types_by_name[message].enum_types_by_name[enum]


def test_schema_header_is_proto2_caffe(shared):
    with open(os.path.join(shared, 'caffe', 'caffe_proto_fields.tsv')) as f:
        comment = [line for line in f if line.startswith('#')][0]
    assert 'syntax=proto2' in comment and 'package=caffe' in comment
    file_proto = descriptor_pb2.FileDescriptorProto()
    caffe_pb2.DESCRIPTOR.CopyToProto(file_proto)
    assert file_proto.package == 'caffe'
    assert file_proto.syntax in ('', 'proto2')  # protoc leaves proto2's syntax field empty


def test_every_message_of_the_table_and_no_other(rows):
    expected = {row['name'] for row in rows if row['kind'] == 'message'}
    assert len(expected) == 63
    assert set(caffe_pb2.DESCRIPTOR.message_types_by_name) == expected


def test_every_field_matches(rows):
    fields = [row for row in rows if row['kind'] == 'field']
    assert len(fields) == 423
    mismatches = []
    for row in fields:
        message = caffe_pb2.DESCRIPTOR.message_types_by_name[row['scope']]
        field = message.fields_by_name.get(row['name'])
        where = '%s.%s' % (row['scope'], row['name'])
        if field is None:
            mismatches.append('%s: missing' % where)
            continue
        for what, expected, actual in (
                ('number', int(row['number']), field.number),
                ('label', row['label'], _label(field)),
                ('type', row['type'], _type_name(field)),
                ('packed', row['packed'] == 'packed', field.is_packed)):
            if expected != actual:
                mismatches.append('%s: %s %r, expected %r' % (where, what, actual, expected))
        if not _same_default(row['default'], field):
            mismatches.append('%s: default %r, expected %r'
                              % (where, _default_text(field), row['default']))
    assert mismatches == []
    per_message = {}
    for row in fields:
        per_message.setdefault(row['scope'], set()).add(row['name'])
    for name, message in caffe_pb2.DESCRIPTOR.message_types_by_name.items():
        assert set(message.fields_by_name) == per_message.get(name, set()), name


def test_every_enum_value_matches(rows):
    values = [row for row in rows if row['kind'] == 'enum_value']
    assert len(values) == 111
    by_enum = {}
    for row in values:
        by_enum.setdefault(row['scope'], {})[row['name']] = int(row['number'])
    declared = {name for name in caffe_pb2.DESCRIPTOR.enum_types_by_name}
    for message_name, message in caffe_pb2.DESCRIPTOR.message_types_by_name.items():
        declared |= {'%s.%s' % (message_name, enum) for enum in message.enum_types_by_name}
    assert declared == set(by_enum)
    for scope, expected in by_enum.items():
        enum = _enum(scope)
        assert {v.name: v.number for v in enum.values} == expected, scope


def test_defaults_are_live_on_messages():
    """Spot checks through the message classes users touch (the defaults Caffe's code relies on)."""
    assert caffe_pb2.NetState().phase == caffe_pb2.TEST
    assert caffe_pb2.ConvolutionParameter().bias_term is True
    assert caffe_pb2.PoolingParameter().round_mode == caffe_pb2.PoolingParameter.CEIL
    assert caffe_pb2.LRNParameter().local_size == 5
    assert caffe_pb2.LRNParameter().beta == pytest.approx(0.75)
    assert caffe_pb2.DataParameter().backend == caffe_pb2.DataParameter.LEVELDB
    assert caffe_pb2.SolverParameter().solver_mode == caffe_pb2.SolverParameter.GPU
    assert caffe_pb2.LossParameter().normalization == caffe_pb2.LossParameter.VALID
    assert caffe_pb2.FillerParameter().type == 'constant'
    assert caffe_pb2.PReLUParameter().channel_shared is False
