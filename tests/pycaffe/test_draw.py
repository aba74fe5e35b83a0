"""Net drawing (cct/draw.py, ``cct draw``): the pydot graph pycaffe builds, phase filtering, and real
PNGs of the size Graphviz's own layout gives, showing the layer colours."""
import io
import os
import sys

import numpy as np
import pytest
from PIL import Image

import cct as caffe
from cct import draw
from cct.cli import main as cct_main
from cct.io import read_net_text


@pytest.fixture(scope='module')
def lenet_train_test(shared):
    return os.path.join(shared, 'nets', 'lenet_train_test.prototxt')


def expected_png_size(net_param, rankdir, phase):
    """Pixel size of the PNG for Graphviz's layout: the 'plain' bounding box in inches plus the
    default 4-point pad on each side, at Graphviz's 96 dpi for bitmaps."""
    plain = draw.get_pydot_graph(net_param, rankdir, phase=phase).create(
        prog=draw.graphviz_program(), format='plain')
    _, _, width, height = plain.split(b'\n')[0].split()
    return tuple((float(inches) * 72 + 8) * 96 / 72 for inches in (width, height))


def assert_real_drawing(png_bytes, expected_size):
    image = Image.open(io.BytesIO(png_bytes))
    assert image.format == 'PNG'
    # Graphviz rounds the final size; allow one pixel either way.
    assert abs(image.size[0] - expected_size[0]) <= 1 and abs(image.size[1] - expected_size[1]) <= 1
    rgb = np.asarray(image.convert('RGB')).reshape(-1, 3).astype(int)
    assert (rgb.min(axis=1) < 240).mean() > 0.05  # far from blank
    for fill in ('#FF5050', '#FF9900', '#CC33FF', '#6495ED', '#90EE90', '#E0E0E0'):
        colour = [int(fill[i:i + 2], 16) for i in (1, 3, 5)]
        assert (rgb == colour).all(axis=1).sum() > 100, fill
    return image


def test_pydot_graph_of_lenet(lenet_train_test):
    net_param = read_net_text(lenet_train_test)
    graph = draw.get_pydot_graph(net_param, 'LR')
    names = {node.get_name() for node in graph.get_nodes()}
    assert '"conv1\\n(Convolution)\\nkernel size: 5\\nstride: 1\\npad: 0"' in names
    assert '"pool1\\n(Pooling MAX)\\nkernel size: 2\\nstride: 2\\npad: 0"' in names
    assert '"accuracy\\n(Accuracy)"' in names and 'ip2' in names
    edge_labels = {edge.get_label() for edge in graph.get_edges()}
    assert {'20', '50', '500', '10', 'Batch 64', 'Batch 100'} <= edge_labels
    train_only = {node.get_name() for node in draw.get_pydot_graph(
        net_param, 'TB', phase=caffe.TRAIN).get_nodes()}
    assert '"accuracy (Accuracy)"' not in train_only and '"loss (SoftmaxWithLoss)"' in train_only


def test_layer_label_details():
    proto = caffe.NetSpec()
    proto.data = caffe.layers.Input(shape=dict(dim=[1, 1, 8, 8]))
    proto.conv = caffe.layers.Convolution(proto.data, kernel_size=3, stride=2, pad=1,
                                          num_output=4, param=[dict(lr_mult=0), dict(lr_mult=3)])
    layer = proto.to_proto().layer[1]
    assert draw.get_layer_label(layer, 'LR') == \
        '"conv\\n(Convolution)\\nkernel size: 3\\nstride: 2\\npad: 1"'
    assert draw.get_layer_label(layer, 'TB', display_lrm=True) == \
        '"conv (Convolution) kernel size: 3 stride: 2 pad: 1 lr mult: 0.0, 3.0"'
    assert draw.get_edge_label(layer) == '4'


def test_draw_net_to_file_writes_a_real_png(lenet_train_test, tmp_path):
    net_param = read_net_text(lenet_train_test)
    path = str(tmp_path / 'lenet.png')
    draw.draw_net_to_file(net_param, path, 'TB', caffe.TEST)
    with open(path, 'rb') as f:
        image = assert_real_drawing(f.read(), expected_png_size(net_param, 'TB', caffe.TEST))
    assert image.size[1] > image.size[0]  # top-to-bottom is tall
    dot_text = draw.draw_net(net_param, 'LR', 'raw').decode()
    assert dot_text.startswith('digraph LeNet {') and 'rankdir=LR' in dot_text


def test_cct_draw_command(lenet_train_test, tmp_path, capsys):
    out = str(tmp_path / 'net.png')
    assert cct_main(['draw', lenet_train_test, out, '--rankdir', 'LR', '--phase', 'TRAIN']) == 0
    net_param = read_net_text(lenet_train_test)
    with open(out, 'rb') as f:
        image = assert_real_drawing(f.read(), expected_png_size(net_param, 'LR', caffe.TRAIN))
    assert image.size[0] > image.size[1]  # left-to-right is wide
    assert cct_main(['draw', lenet_train_test, out, '--phase', 'VAL']) == 1
    assert 'Unknown phase: VAL' in capsys.readouterr().err


def test_cct_draw_output_positional_or_flag(lenet_train_test, tmp_path, capsys):
    """The image is the second argument, as draw_net.py takes it, or ``--out`` as cct plot's."""
    positional, flag = str(tmp_path / 'a.dot'), str(tmp_path / 'b.dot')
    assert cct_main(['draw', lenet_train_test, positional]) == 0
    assert cct_main(['draw', lenet_train_test, '--out', flag]) == 0
    with open(positional) as a, open(flag) as b:
        text = a.read()
        assert text.startswith('digraph LeNet {') and text == b.read()
    capsys.readouterr()
    assert cct_main(['draw', lenet_train_test]) == 1
    assert capsys.readouterr().err == ('cct draw: error: no output file given: name it as the '
                                       'last argument or with --out\n')
    assert cct_main(['draw', lenet_train_test, positional, '--out', flag]) == 1
    assert 'two output files given' in capsys.readouterr().err


def test_cct_draw_without_pydot_is_one_line(lenet_train_test, tmp_path, capsys, monkeypatch,
                                            extras):
    """The README's main install (the data extra) has no pydot: say what to install."""
    monkeypatch.setitem(sys.modules, 'pydot', None)   # makes the import fail
    assert cct_main(['draw', lenet_train_test, str(tmp_path / 'net.png')]) == 1
    assert capsys.readouterr().err == (
        'cct draw: error: drawing a net needs pydot, which is not installed: pip install '
        '"pydot>=3" "graphviz-pure>=0.2" (or pip install -e ".[draw]" in cct\'s checkout)\n')
    assert extras['draw'] == ['pydot>=3', 'graphviz-pure>=0.2']
    with pytest.raises(ImportError):   # pycaffe scripts that catch ImportError still do
        draw.get_pydot_graph(read_net_text(lenet_train_test), 'LR')
