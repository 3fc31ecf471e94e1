"""Generated protobuf messages and gRPC stubs of the `dbforge.v1` proto package.

The modules beside this file are written by `buf generate` (see the repository's buf.gen.yaml)
and must not be edited by hand; the tests fail when they are stale.
"""
