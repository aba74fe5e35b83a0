"""How benchmarks/compare_pytorch.py reports: the host line, the console table as rows arrive,
and the README's Markdown table at the end."""
import os

NAMES = {'lenet': 'LeNet', 'cifar10_quick': 'CIFAR-10 quick', 'caffenet': 'CaffeNet',
         'alexnet': 'AlexNet', 'googlenet': 'GoogLeNet', 'resnet50': 'ResNet-50',
         'mobilenet': 'MobileNet v1', 'mobilenet_v2': 'MobileNet v2',
         'squeezenet': 'SqueezeNet v1.1'}


def host_description():
    """The CPU's name, its widest vector extension and the core count, for the tables."""
    from cct.devices.cpu import cpu_model
    flags = ''
    try:
        with open('/proc/cpuinfo') as f:
            flags = next((line for line in f if line.startswith('flags')), '')
    except OSError:
        pass
    vector = next((name for flag, name in (('avx512f', 'AVX-512'), ('avx2', 'AVX2'),
                                            ('avx', 'AVX'), ('asimd', 'NEON'))
                   if ' %s' % flag in flags), None)
    return '%s%s, %d cores' % (cpu_model(), ' (%s)' % vector if vector else '', os.cpu_count())


def print_header():
    print('%-14s %5s %9s %9s %7s %9s %7s %10s %8s %8s %8s %8s' % (
        'net', 'batch', 'cct ms', 'torch ms', 'ratio', 'folded ms', 'ratio', 'GEMM bound',
        'cct MB', 'unshared', 'torch MB', 'folded'))


def _cell(row, key, form):
    return form % row[key] if key in row else '-'


def _ms(row, key):
    """Milliseconds to a tenth below a second, whole above."""
    return _cell(row, key, '%.1f' if row.get(key, 0) < 1000 else '%.0f')


def print_row(row, memory='peak_rss_mb'):
    """One net's line; MB are ``memory`` (peak RSS, or on a GPU the peak device memory)."""
    print('%-14s %5d %9.1f %9s %7s %9s %7s %9.0f%% %8s %8s %8s %8s' % (
        row['net'], row['batch'], row['cct_ms'], _cell(row, 'torch_ms', '%.1f'),
        _cell(row, 'ratio', '%.2fx'), _cell(row, 'torch_folded_ms', '%.1f'),
        _cell(row, 'ratio_folded', '%.2fx'), 100 * row['gemm_bound_fraction'],
        _cell(row, 'cct_' + memory, '%.0f'), _cell(row, 'cct_unshared_' + memory, '%.0f'),
        _cell(row, 'torch_' + memory, '%.0f'), _cell(row, 'torch_folded_' + memory, '%.0f')),
        flush=True)


def markdown_table(rows, host, memory='peak_rss_mb'):
    """The rows as the README's table (Markdown), for pasting after a run."""
    lines = ['%s; cct / PyTorch of the fastest iterations; %s in MB, cct\'s without diff '
             'sharing in parentheses' % (host, 'peak device memory' if 'device' in memory
                                         else 'peak RSS'), '',
             '| net | batch | cct ms | PyTorch ms | cct / PyTorch | PyTorch folded ms | '
             'cct / folded | cct MB | PyTorch MB | folded MB |', '|---|' + '---:|' * 9]
    for row in rows:
        lines.append('| %s | %d | %s | %s | %s | %s | %s | %s (%s) | %s | %s |' % (
            NAMES.get(row['net'], row['net']), row['batch'], _ms(row, 'cct_ms'),
            _ms(row, 'torch_ms'),
            _cell(row, 'ratio', '%.2fx'), _ms(row, 'torch_folded_ms'),
            _cell(row, 'ratio_folded', '%.2fx'), _cell(row, 'cct_' + memory, '%.0f'),
            _cell(row, 'cct_unshared_' + memory, '%.0f'), _cell(row, 'torch_' + memory, '%.0f'),
            _cell(row, 'torch_folded_' + memory, '%.0f')))
    return '\n'.join(lines)
