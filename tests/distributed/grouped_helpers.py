"""Helpers of the compute-group tests: LeNet solver files on the digits folder, and the numbers
read back from cct's log."""
import os
import re

EXAMPLE = os.path.join(os.path.dirname(__file__), '..', '..', 'examples', 'digits')


def write_solver(folder, name, batch_size=64, **fields):
    """A LeNet solver (the example's, with ``fields`` replacing its values) whose net reads the
    digits in ``folder`` with a train batch of ``batch_size``; returns its path."""
    net = open(os.path.join(EXAMPLE, 'lenet_train_test.prototxt')).read()
    net = net.replace('examples/digits/', str(folder) + '/')
    net = net.replace('batch_size: 64', 'batch_size: %d' % batch_size)
    net_path = os.path.join(folder, name + '_net.prototxt')
    with open(net_path, 'w') as f:
        f.write(net)
    values = {'net': '"%s"' % net_path, 'test_iter': 3, 'test_interval': 50, 'base_lr': 0.01,
              'momentum': 0.9, 'weight_decay': 0.0005, 'lr_policy': '"inv"', 'gamma': 0.0001,
              'power': 0.75, 'display': 10, 'max_iter': 60, 'random_seed': 1,
              'snapshot_after_train': 'false',
              'snapshot_prefix': '"%s"' % os.path.join(folder, name)}
    values.update(fields)
    path = os.path.join(folder, name + '_solver.prototxt')
    with open(path, 'w') as f:
        for key, value in values.items():
            f.write('%s: %s\n' % (key, value))
    return path


def losses(text):
    """{iteration: smoothed loss} of the ``Iteration N (...), loss = x`` lines of a log."""
    return {int(i): float(v) for i, v in
            re.findall(r'Iteration (\d+)(?: \(.*?\))?, loss = (\S+)', text)}


def test_accuracies(text):
    return [float(v) for v in re.findall(r'Test net output #0: accuracy = (\S+)', text)]


test_accuracies.__test__ = False
