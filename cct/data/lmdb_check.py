"""A check of an LMDB file's B-tree before LMDB reads it (the layout of LMDB 0.9's mdb.c, 64-bit).

LMDB trusts its pages: on a damaged one it fails an assertion (abort), or reads past the end of the
file (SIGBUS), or returns another record's bytes, and any of these kills the process or trains on
garbage. Walking the tree once when the database is opened (every branch and leaf page, every
record's node; overflow pages only by their header) finds the damage first, so it can be reported
as an error naming the database, the page and the last good record. The walk reads the leaf pages
once (for datasets of large records, a small part of the file).
"""
import os
import struct

from cct.errors import DataError

_MAGIC = 0xBEEFC0DE
_HEADER = 16    # page header: pgno (8), pad (2), flags (2), lower (2), upper (2) or pages (4)
_NODE = 8       # node header: lo (2), hi (2), flags (2), ksize (2)
_BRANCH, _LEAF, _OVERFLOW, _DIRTY = 0x01, 0x02, 0x04, 0x10
_BIGDATA, _SUBDATA, _DUPDATA = 0x01, 0x02, 0x04
_INVALID = 2 ** 64 - 1  # the root of an empty database


class _Damage(Exception):
    pass


def _meta(read, psize):
    """(root, depth, entries, last_pgno) of the newer of the two meta pages, as LMDB picks it."""
    best = None
    for page in (0, 1):
        raw = read(page * psize, 152)
        magic, = struct.unpack_from('<I', raw, 16)
        if magic != _MAGIC:
            continue
        depth, = struct.unpack_from('<H', raw, 88 + 6)
        entries, root = struct.unpack_from('<QQ', raw, 88 + 32)
        last_pgno, txnid = struct.unpack_from('<QQ', raw, 136)
        if best is None or txnid > best[0]:
            best = (txnid, root, depth, entries, last_pgno)
    if best is None:
        raise _Damage('neither meta page carries LMDB\'s magic number')
    return best[1:]


def check_lmdb(path, psize, last_pgno, entries):
    """Raise DataError if the B-tree of ``path``/data.mdb is damaged.

    ``psize``, ``last_pgno`` and ``entries`` are what LMDB itself reports (``stat()``/``info()``);
    the tree must agree with them.
    """
    data_file = os.path.join(path, 'data.mdb')
    last_key = [None]
    with open(data_file, 'rb') as f:
        fd = f.fileno()

        def read(offset, size):
            raw = os.pread(fd, size, offset)
            if len(raw) != size:
                raise _Damage('the file ends at byte %d, inside page %d'
                              % (offset + len(raw), offset // psize))
            return raw

        try:
            root, depth, meta_entries, meta_last = _meta(read, psize)
            if meta_last != last_pgno or meta_entries != entries:
                raise _Damage('the meta page disagrees with LMDB (%d pages, %d records; LMDB '
                              'reports %d and %d)' % (meta_last + 1, meta_entries, last_pgno + 1,
                                                      entries))
            found = 0 if root == _INVALID else _walk(read, psize, last_pgno, root, depth,
                                                     last_key)
            if found != entries:
                raise _Damage('the tree holds %d records, LMDB counts %d' % (found, entries))
        except (_Damage, struct.error) as e:
            after = (" (after record '%s')" % last_key[0].decode('utf-8', 'replace')
                     if last_key[0] is not None else '')
            raise DataError('LMDB database %s is corrupt: %s%s' % (path, e, after)) from None


def _walk(read, psize, last_pgno, root, depth, last_key):
    """Visit every page under ``root`` in key order; return the number of records."""
    found = 0
    stack = [(root, depth)]
    while stack:
        pgno, level = stack.pop()
        if not 2 <= pgno <= last_pgno:
            raise _Damage('a branch points to page %d, outside pages 2-%d' % (pgno, last_pgno))
        page = read(pgno * psize, psize)
        stored, flags, lower, upper = struct.unpack_from('<Q2xHHH', page, 0)
        flags &= ~_DIRTY
        want = _LEAF if level == 1 else _BRANCH
        if stored != pgno or flags != want or level < 1:
            raise _Damage('page %d is not the %s page the tree expects there (number %d, flags '
                          '0x%x)' % (pgno, 'leaf' if want == _LEAF else 'branch', stored, flags))
        if not _HEADER <= lower <= upper <= psize or (lower - _HEADER) % 2:
            raise _Damage('page %d has a bad free-space range (%d, %d)' % (pgno, lower, upper))
        count = (lower - _HEADER) // 2
        offsets = struct.unpack_from('<%dH' % count, page, _HEADER)
        children = []
        for offset in offsets:
            if not upper <= offset <= psize - _NODE:
                raise _Damage('page %d has a node at offset %d, outside its data' % (pgno, offset))
            lo, hi, node_flags, ksize = struct.unpack_from('<4H', page, offset)
            key_end = offset + _NODE + ksize
            if key_end > psize:
                raise _Damage('page %d has a key running past the page' % pgno)
            if want == _BRANCH:
                children.append(lo | hi << 16 | node_flags << 32)
                continue
            size = lo | hi << 16
            if node_flags & (_SUBDATA | _DUPDATA) or node_flags & ~0x7:
                raise _Damage('page %d has a record with flags 0x%x (not a Caffe dataset)'
                              % (pgno, node_flags))
            if node_flags & _BIGDATA:
                if key_end + 8 > psize:
                    raise _Damage('page %d has a record running past the page' % pgno)
                first, = struct.unpack_from('<Q', page, key_end)
                pages = -(-(_HEADER + size) // psize)
                if not 2 <= first or first + pages - 1 > last_pgno:
                    raise _Damage('a record of %d bytes on pages %d-%d lies outside pages 2-%d'
                                  % (size, first, first + pages - 1, last_pgno))
                head = read(first * psize, _HEADER)
                stored, overflow_flags, held = struct.unpack_from('<Q2xHI', head, 0)
                if stored != first or overflow_flags & ~_DIRTY != _OVERFLOW or held < pages:
                    raise _Damage('page %d is not the overflow page of %d pages a record '
                                  'needs' % (first, pages))
            elif key_end + size > psize:
                raise _Damage('page %d has a record of %d bytes running past the page'
                              % (pgno, size))
            last_key[0] = page[offset + _NODE:key_end]
            found += 1
        # Depth first, leftmost child first: records are visited in key order.
        stack.extend((child, level - 1) for child in reversed(children))
    return found
