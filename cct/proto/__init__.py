"""Caffe's protobuf schema for cct: ``cct.proto.caffe_pb2`` is pycaffe's ``caffe.proto.caffe_pb2``."""
