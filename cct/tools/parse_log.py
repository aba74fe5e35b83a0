"""Parse a Caffe or cct training log into LOG.train and LOG.test CSV files (tools/extra/parse_log.py).

The rules, as in Caffe's script: parsing starts after the 'Solving' line (its timestamp is time 0;
without one, as when a solver is stepped from Python, the first glog line is time 0) and from the
first 'Iteration N' line; 'Train net output #k: NAME = V' and 'Test net output #k: NAME = V' lines
fill one row per iteration with NumIters, Seconds, LearningRate (the last 'lr = ' seen) and one
column per output. A row is written once it has as many columns as the first row, and the first row
once the second starts, so a log with a single row of a kind gives no file for it. The first row's
LearningRate (NaN before any 'lr = ' line) is copied from the second row. The log's year is that of
the file's ctime, bumped when the month goes backwards. Files use the csv module's excel dialect
(CRLF line ends).
"""
import csv
import datetime
import os
import re
from collections import OrderedDict

from cct.errors import DataError

_ITERATION = re.compile(r'Iteration (\d+)')
_TRAIN_OUTPUT = re.compile(r'Train net output #(\d+): (\S+) = ([\.\deE+-]+)')
_TEST_OUTPUT = re.compile(r'Test net output #(\d+): (\S+) = ([\.\deE+-]+)')
_LEARNING_RATE = re.compile(r'lr = ([-+]?[0-9]*\.?[0-9]+([eE]?[-+]?[0-9]+)?)')


def extract_datetime_from_line(line, year):
    """The time of a glog line (``I0210 13:39:22.381027 25210 solver.cpp:204] ...``) in ``year``.

    Raises ValueError for a line without a glog prefix.
    """
    fields = line.strip().split()
    if len(fields) < 2:
        raise ValueError('no glog time stamp in line: %r' % line)
    month = int(fields[0][1:3])
    day = int(fields[0][3:])
    timestamp = fields[1]
    pos = timestamp.rfind('.')
    hour, minute, second = (int(x) for x in timestamp[:pos].split(':'))
    microsecond = int(timestamp[pos + 1:])
    return datetime.datetime(year, month, day, hour, minute, second, microsecond)


def get_log_created_year(path):
    """The year of the log file's ctime (glog lines carry no year)."""
    return datetime.datetime.fromtimestamp(os.path.getctime(path)).year


def get_start_time(lines, year):
    """The time of the first 'Solving' line (consuming ``lines`` up to it), or None."""
    for line in lines:
        line = line.strip()
        if line.find('Solving') != -1:
            return extract_datetime_from_line(line, year)
    return None


def _first_glog_time(lines, year):
    for line in lines:
        try:
            return extract_datetime_from_line(line, year)
        except ValueError:
            continue
    return None


def parse_log(path_to_log):
    """Parse a training log.

    Returns:
        (train_dict_list, test_dict_list): lists of OrderedDict rows (NumIters, Seconds,
        LearningRate, then one entry per net output).
    """
    iteration = -1
    learning_rate = float('NaN')
    train_dict_list, test_dict_list = [], []
    train_row = test_row = None
    logfile_year = get_log_created_year(path_to_log)
    with open(path_to_log, errors='replace') as f:
        start_time = get_start_time(f, logfile_year)
        if start_time is None:
            # No 'Solving' line: a net stepped from Python (pycaffe's solver.step) never logs one,
            # and Caffe's script crashes there. Time 0 is then the first glog line.
            f.seek(0)
            start_time = _first_glog_time(f, logfile_year)
            if start_time is None:
                raise DataError('%s: no glog lines found; is this a Caffe or cct training log?'
                                % path_to_log)
            f.seek(0)
        last_time = start_time
        for line in f:
            iteration_match = _ITERATION.search(line)
            if iteration_match:
                iteration = float(iteration_match.group(1))
            if iteration == -1:
                continue
            try:
                time = extract_datetime_from_line(line, logfile_year)
            except ValueError:
                continue  # lines without a glog prefix, e.g. from a resumed solver
            if time.month < last_time.month:
                logfile_year += 1
                time = extract_datetime_from_line(line, logfile_year)
            last_time = time
            seconds = (time - start_time).total_seconds()
            learning_rate_match = _LEARNING_RATE.search(line)
            if learning_rate_match:
                learning_rate = float(learning_rate_match.group(1))
            train_dict_list, train_row = parse_line_for_net_output(
                _TRAIN_OUTPUT, train_row, train_dict_list, line, iteration, seconds,
                learning_rate)
            test_dict_list, test_row = parse_line_for_net_output(
                _TEST_OUTPUT, test_row, test_dict_list, line, iteration, seconds, learning_rate)
    fix_initial_nan_learning_rate(train_dict_list)
    fix_initial_nan_learning_rate(test_dict_list)
    return train_dict_list, test_dict_list


def parse_line_for_net_output(regex_obj, row, row_dict_list, line, iteration, seconds,
                              learning_rate):
    """Add one line's net output to the current row; returns (row_dict_list, row)."""
    output_match = regex_obj.search(line)
    if output_match:
        if not row or row['NumIters'] != iteration:
            if row:
                row_dict_list.append(row)
            row = OrderedDict([('NumIters', iteration), ('Seconds', seconds),
                               ('LearningRate', learning_rate)])
        row[output_match.group(2)] = float(output_match.group(3))
    if row and len(row_dict_list) >= 1 and len(row) == len(row_dict_list[0]):
        row_dict_list.append(row)
        row = None
    return row_dict_list, row


def fix_initial_nan_learning_rate(dict_list):
    """The first rows come before any 'lr = ' line: give the first the second row's rate."""
    if len(dict_list) > 1:
        dict_list[0]['LearningRate'] = dict_list[1]['LearningRate']


def write_csv(output_filename, dict_list, delimiter=',', verbose=False):
    """Write rows as CSV (excel dialect); nothing is written for no rows."""
    if not dict_list:
        if verbose:
            print('Not writing %s; no lines to write' % output_filename)
        return
    with open(output_filename, 'w', newline='') as f:
        writer = csv.DictWriter(f, fieldnames=list(dict_list[0].keys()), dialect=csv.excel,
                                delimiter=delimiter)
        writer.writeheader()
        writer.writerows(dict_list)
    if verbose:
        print('Wrote %s' % output_filename)


def save_csv_files(logfile_path, output_dir, train_dict_list, test_dict_list, delimiter=',',
                   verbose=False):
    """Write ``<log name>.train`` and ``<log name>.test`` into ``output_dir``."""
    log_basename = os.path.basename(logfile_path)
    write_csv(os.path.join(output_dir, log_basename + '.train'), train_dict_list, delimiter,
              verbose)
    write_csv(os.path.join(output_dir, log_basename + '.test'), test_dict_list, delimiter, verbose)


def add_arguments(parser):
    parser.add_argument('logfile_path', help='Path to log file')
    parser.add_argument('output_dir', help='Directory in which to place output CSV files')
    parser.add_argument('--verbose', action='store_true',
                        help='Print some extra info (e.g., output filenames)')
    parser.add_argument('--delimiter', default=',',
                        help="Column delimiter in output files (default: '%(default)s')")


def run(args):
    if not os.path.isfile(args.logfile_path):
        raise DataError('log file not found: %s' % args.logfile_path)
    if not os.path.isdir(args.output_dir):
        raise DataError('output directory not found: %s' % args.output_dir)
    train_dict_list, test_dict_list = parse_log(args.logfile_path)
    save_csv_files(args.logfile_path, args.output_dir, train_dict_list, test_dict_list,
                   delimiter=args.delimiter, verbose=args.verbose)
