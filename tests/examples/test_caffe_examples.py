"""examples/mnist and examples/cifar10: the scripts are valid shell, name solvers that exist, and
create_mnist.sh (run on the real MNIST test files) writes the LMDB real Caffe wrote."""
import glob
import os
import re
import shutil
import subprocess
import sys

import lmdb
import pytest

EXAMPLES = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..', 'examples'))
ROOT = os.path.dirname(EXAMPLES)
SCRIPTS = sorted(glob.glob(os.path.join(EXAMPLES, '*', '*.sh')))


@pytest.mark.parametrize('script', SCRIPTS, ids=os.path.basename)
def test_scripts_parse_and_name_existing_files(script):
    subprocess.run(['sh', '-n', script], check=True)
    text = open(script).read()
    for solver in re.findall(r'--solver=(\S+)', text):
        assert os.path.isfile(os.path.join(ROOT, solver)), solver
    for prototxt in glob.glob(os.path.join(os.path.dirname(script), '*.prototxt')):
        for net in re.findall(r'^net: "(.*)"', open(prototxt).read(), re.M):
            assert os.path.isfile(os.path.join(ROOT, net)), (prototxt, net)


def test_create_mnist_writes_caffes_lmdb(shared, tmp_path):
    data = tmp_path / 'data'
    data.mkdir()
    for kind in ('images-idx3', 'labels-idx1'):
        source = os.path.join(shared, 'data', 'mnist', 't10k-%s-ubyte.gz' % kind)
        os.symlink(source, data / ('t10k-%s-ubyte.gz' % kind))
        os.symlink(source, data / ('train-%s-ubyte.gz' % kind))  # stands in for the train set
    (tmp_path / 'examples').mkdir()
    shutil.copytree(os.path.join(EXAMPLES, 'mnist'), tmp_path / 'examples' / 'mnist')
    env = dict(os.environ, DATA=str(data),
               PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ.get('PATH', ''))
    subprocess.run(['sh', 'examples/mnist/create_mnist.sh'], cwd=tmp_path, env=env, check=True,
                   capture_output=True)

    def records(path):
        env = lmdb.open(str(path), readonly=True, lock=False)
        with env.begin() as txn:
            items = list(txn.cursor())
        env.close()
        return items
    caffe = records(os.path.join(shared, 'data', 'mnist_test_lmdb_by_caffe'))
    assert records(tmp_path / 'examples' / 'mnist' / 'mnist_test_lmdb') == caffe
    assert records(tmp_path / 'examples' / 'mnist' / 'mnist_train_lmdb') == caffe
