"""Caffe's key-value datasets (util/db_lmdb.cpp, util/db_leveldb.cpp): LMDB through ``lmdb``,
LevelDB through ``plyvel``.

Records are read in key order (bytewise, as both databases sort), which is why Caffe's tools write
zero-padded keys. The rules that are easy to get wrong:

* A new database must not exist yet (Caffe's ``mkdir`` / ``error_if_exists``): writing never mixes
  new records into an old dataset.
* Writes are committed in transactions (the tools commit every 1000 records); an LMDB whose map
  fills up doubles its map size and retries the transaction, as Caffe's LMDBTransaction::Commit
  does, so no size has to be guessed up front.
* Readers open LMDB without its lock file, so reading never writes into the dataset's directory
  (datasets often sit on read-only shares; Caffe's ALLOW_LMDB_NOLOCK build does the same).
"""
import os
import threading
import weakref

from cct.errors import DataError
from cct.log import logger
from cct.proto import caffe_pb2

BACKENDS = ('lmdb', 'leveldb')
_LMDB_INITIAL_MAP_SIZE = 10485760  # LMDB's own default (10 MiB), where Caffe starts too


def backend_name(backend):
    """``'lmdb'`` or ``'leveldb'`` for a DataParameter.DB value or a backend string (any case)."""
    if isinstance(backend, int):
        return {caffe_pb2.DataParameter.LMDB: 'lmdb',
                caffe_pb2.DataParameter.LEVELDB: 'leveldb'}.get(backend, str(backend))
    name = str(backend).lower()
    if name not in BACKENDS:
        raise DataError('Unknown database backend %r (lmdb or leveldb)' % backend)
    return name


def _import(module):
    try:
        return __import__(module)
    except ImportError:
        raise DataError('%s databases need the %s package: pip install "cct[data]"'
                        % ('LMDB' if module == 'lmdb' else 'LevelDB', module)) from None


def _check_exists(path, backend):
    if not os.path.exists(path):
        raise DataError('%s database not found: %s' % (backend_label(backend), path))
    if not os.path.isdir(path):
        raise DataError('%s database path is not a directory: %s' % (backend_label(backend), path))
    if backend == 'leveldb' and os.path.exists(os.path.join(path, 'data.mdb')):
        raise DataError('%s is an LMDB database, not a LevelDB one (set backend: LMDB)' % path)
    if backend == 'lmdb' and not os.path.exists(os.path.join(path, 'data.mdb')):
        hint = ' (it looks like a LevelDB database: set backend: LEVELDB)' \
            if os.path.exists(os.path.join(path, 'CURRENT')) else ''
        raise DataError('%s is not an LMDB database: no data.mdb in it%s' % (path, hint))


class _SharedHandle:
    """One open read-only database, shared by every Reader of its path in this process (lmdb
    refuses to open an environment twice, LevelDB's lock file refuses a second opener); closed when
    the last Reader lets go of it."""

    _open = weakref.WeakValueDictionary()
    _lock = threading.Lock()

    def __init__(self, handle):
        self.handle = handle
        weakref.finalize(self, handle.close)

    @classmethod
    def get(cls, path, backend):
        key = (backend, os.path.realpath(path))
        if backend == 'lmdb':
            # A database removed and made again at the same path (a dataset script rerun in a
            # notebook) is a new one: the open handle would go on reading the old, unlinked
            # data.mdb. Its file identity tells them apart (the open file's inode is not reused).
            info = os.stat(os.path.join(path, 'data.mdb'))
            key += (info.st_dev, info.st_ino)
        with cls._lock:
            shared = cls._open.get(key)
            if shared is None:
                shared = cls._open[key] = cls(_open_read_only(path, backend))
            return shared


def _open_read_only(path, backend):
    if backend == 'lmdb':
        lmdb = _import('lmdb')
        try:
            return lmdb.open(path, readonly=True, lock=False, subdir=True, max_dbs=0)
        except lmdb.Error as e:
            raise DataError('cannot open LMDB database %s: %s' % (path, e)) from None
    plyvel = _import('plyvel')
    try:
        return plyvel.DB(path, create_if_missing=False, max_open_files=100)
    except (plyvel.Error, OSError) as e:
        raise DataError('Failed to open leveldb %s: %s' % (path, e)) from None


def backend_label(backend):
    return {'lmdb': 'LMDB', 'leveldb': 'LevelDB'}.get(backend, backend)


class Reader:
    """A read-only database: ``first()`` and ``cursor()`` walk its records in key order.

    Args:
        path: the database directory.
        backend: ``'lmdb'`` or ``'leveldb'`` (or a DataParameter.DB value).
    """

    def __init__(self, path, backend):
        self.path = os.fspath(path)
        self.backend = backend_name(backend)
        _check_exists(self.path, self.backend)
        self._shared = _SharedHandle.get(self.path, self.backend)
        self._env = self._shared.handle if self.backend == 'lmdb' else None
        self._db = self._shared.handle if self.backend == 'leveldb' else None
        logger.info('Opened %s %s', self.backend, self.path)

    def __len__(self):
        """The number of records (LMDB knows it; LevelDB is counted by a scan)."""
        if self._env is not None:
            return self._env.stat()['entries']
        return sum(1 for _ in self._db.iterator(include_value=False))

    def first(self):
        """The first ``(key, value)`` in key order, or None for an empty database."""
        if self._env is not None:
            with self._env.begin(buffers=False) as txn:
                cursor = txn.cursor()
                return cursor.item() if cursor.first() else None
        for item in self._db.iterator():
            return item
        return None

    def items(self):
        """Iterate once over every ``(key, value)`` in key order."""
        if self._env is not None:
            with self._env.begin(buffers=False) as txn:
                yield from txn.cursor().iternext(keys=True, values=True)
        else:
            yield from self._db.iterator()

    def cursor(self):
        """A Cursor positioned on the first record."""
        return Cursor(self)

    def close(self):
        """Let go of the database (closed once no Reader of it is left)."""
        self._env = self._db = self._shared = None


class Cursor:
    """Caffe's db::Cursor: ``key``/``value`` of the current record, ``next()``, ``seek_to_first()``.

    The underlying transaction (LMDB) or iterator (LevelDB) is opened on first use, so a cursor
    made on one thread may be driven by another (the prefetch thread).
    """

    def __init__(self, reader):
        self._reader = reader
        self._txn = self._iter = None
        self.key = self.value = None
        self.valid = False
        self._started = False

    def _open(self):
        self._started = True
        if self._reader._env is not None:
            self._txn = self._reader._env.begin(buffers=False)
            self._lmdb_cursor = self._txn.cursor()
        self.seek_to_first()

    def seek_to_first(self):
        if self._reader._env is not None:
            self.valid = self._lmdb_cursor.first()
            if self.valid:
                self.key, self.value = self._lmdb_cursor.item()
        else:
            self._iter = self._reader._db.iterator()
            self._advance_leveldb()

    def seek(self, key):
        """Move to the record ``key`` (bytes); a database without it (changed since the position
        was saved) raises a DataError naming the key and the path."""
        self.ensure_started()
        if self._reader._env is not None:
            self.valid = self._lmdb_cursor.set_key(key)
            if self.valid:
                self.key, self.value = self._lmdb_cursor.item()
        else:
            self._iter.close()
            self._iter = self._reader._db.iterator()
            self._iter.seek(key)
            self._advance_leveldb()
            self.valid = self.valid and self.key == key
        if not self.valid:
            raise DataError("%s has no record '%s' to go on from (the database changed since the "
                            "position was saved?)" % (self._reader.path,
                                                     key.decode('utf-8', 'replace')))

    def _advance_leveldb(self):
        try:
            self.key, self.value = next(self._iter)
            self.valid = True
        except StopIteration:
            self.valid = False
            self.key = self.value = None

    def ensure_started(self):
        if not self._started:
            self._open()

    def next(self):
        self.ensure_started()
        if self._reader._env is not None:
            self.valid = self._lmdb_cursor.next()
            if self.valid:
                self.key, self.value = self._lmdb_cursor.item()
        else:
            self._advance_leveldb()

    def close(self):
        if self._txn is not None:
            self._txn.abort()
            self._txn = None
        if self._iter is not None:
            self._iter.close()
            self._iter = None


class Writer:
    """A new database filled by ``put``; ``commit`` ends a transaction, ``close`` commits the rest.

    Args:
        path: the database directory; it must not exist yet.
        backend: ``'lmdb'`` or ``'leveldb'``.
    """

    def __init__(self, path, backend):
        self.path = os.fspath(path)
        self.backend = backend_name(backend)
        if os.path.exists(self.path):
            raise DataError('cannot create %s database %s: it already exists (Caffe never writes '
                            'into an existing database; remove it first)'
                            % (backend_label(self.backend), self.path))
        self._pending = []
        if self.backend == 'lmdb':
            self._lmdb = _import('lmdb')
            os.makedirs(self.path, mode=0o744)
            self._map_size = _LMDB_INITIAL_MAP_SIZE
            self._env = self._lmdb.open(self.path, map_size=self._map_size, subdir=True,
                                        readonly=False, lock=True, max_dbs=0)
            self._db = None
        else:
            plyvel = _import('plyvel')
            try:
                self._db = plyvel.DB(self.path, create_if_missing=True, error_if_exists=True,
                                     write_buffer_size=268435456, block_size=65536,
                                     max_open_files=100)
            except (plyvel.Error, OSError) as e:
                raise DataError('Failed to open leveldb %s: %s' % (self.path, e)) from None
            self._env = None
        logger.info('Opened %s %s', self.backend, self.path)

    def put(self, key, value):
        """Queue one record (``key`` str or bytes, ``value`` bytes) for the next commit."""
        # A file name's undecodable bytes (read with surrogateescape) go back as they were.
        self._pending.append((key.encode('utf-8', 'surrogateescape') if isinstance(key, str)
                              else bytes(key), value))

    def commit(self):
        """Write the queued records in one transaction."""
        if not self._pending:
            return
        if self._db is not None:
            with self._db.write_batch() as batch:
                for key, value in self._pending:
                    batch.put(key, value)
        else:
            while True:
                try:
                    with self._env.begin(write=True) as txn:
                        for key, value in self._pending:
                            txn.put(key, value)
                    break
                except self._lmdb.MapFullError:
                    # Caffe's LMDBTransaction::Commit: double the map and retry the transaction.
                    self._map_size *= 2
                    self._env.set_mapsize(self._map_size)
        self._pending = []

    def close(self):
        """Commit what is pending and close the database."""
        self.commit()
        if self._env is not None:
            self._env.close()
            self._env = None
        if self._db is not None:
            self._db.close()
            self._db = None

    def __enter__(self):
        return self

    def __exit__(self, kind, value, traceback):
        if kind is None:
            self.close()
        else:
            self._pending = []
            self.close()
        return False
