"""Writing nets in Python (pycaffe's python/caffe/net_spec.py): ``layers`` (L), ``params`` (P),
``NetSpec`` and ``to_proto``.

``L.Convolution(n.data, kernel_size=5, num_output=20, weight_filler=dict(type='xavier'))`` records a
layer; ``n.to_proto()`` emits a NetParameter with only the layers the assigned tops need, in
dependency order. Naming and keyword rules, as in pycaffe:

* A top takes the NetSpec attribute name it was assigned to; a layer takes the name of its first
  top. Anything unnamed gets ``<Type><k>`` with a per-type counter, in emission order.
* ``ntop`` (default 1; 0 returns the layer itself, >1 a tuple of tops) and ``in_place=True`` (tops
  are the bottoms) are special.
* A key ending in ``param`` is set on the LayerParameter (``param=[dict(lr_mult=1)]``,
  ``transform_param=...``). Any other key is tried on the type's ``<type>_param`` message
  (``kernel_size`` -> convolution_param) and, failing that, on the LayerParameter itself
  (``loss_weight``, ``include=dict(phase=TRAIN)``). Types without a parameter message of their own
  name (e.g. Deconvolution) need the explicit ``convolution_param=dict(...)``.
* Lists become repeated fields, dicts sub-messages, and a scalar given for a repeated field becomes
  a one-element list.
"""
from collections import Counter, OrderedDict

from cct.proto import caffe_pb2


def param_name_dict():
    """Map each ``<Type>Parameter`` message name, minus 'Parameter', to its LayerParameter field
    prefix: {'Convolution': 'convolution', 'InnerProduct': 'inner_product', ...}."""
    names = {}
    for field in caffe_pb2.LayerParameter.DESCRIPTOR.fields:
        if field.name.endswith('_param') and field.message_type is not None:
            names[field.message_type.name[:-len('Parameter')]] = field.name[:-len('_param')]
    return names


def assign_proto(proto, name, val):
    """Set field ``name`` of ``proto`` from a Python value: lists fill repeated fields (dicts in
    them become added messages), dicts fill sub-messages, anything else is assigned."""
    field = getattr(proto, name)
    is_repeated = hasattr(field, 'extend')
    if isinstance(val, tuple):
        val = list(val)
    if is_repeated and not isinstance(val, list):
        val = [val]
    if isinstance(val, list):
        if val and isinstance(val[0], dict):
            for item in val:
                proto_item = field.add()
                for key, value in item.items():
                    assign_proto(proto_item, key, value)
        else:
            field.extend(val)
    elif isinstance(val, dict):
        for key, value in val.items():
            assign_proto(field, key, value)
    else:
        setattr(proto, name, val)


def to_proto(*tops):
    """A NetParameter with every layer needed to compute ``tops`` (intermediate names automatic)."""
    layers = OrderedDict()
    autonames = Counter()
    for top in tops:
        top.fn._to_proto(layers, {}, autonames)
    net = caffe_pb2.NetParameter()
    net.layer.extend(layers.values())
    return net


class Top:
    """One output blob of a layer (a Function may produce several)."""

    def __init__(self, fn, n):
        self.fn = fn
        self.n = n

    def to_proto(self):
        """A NetParameter with every layer needed to compute this top."""
        return to_proto(self)

    def _update(self, params):
        self.fn._update(params)

    def _to_proto(self, layers, names, autonames):
        return self.fn._to_proto(layers, names, autonames)


class Function:
    """A layer: its type, its input Tops and its keyword parameters."""

    def __init__(self, type_name, inputs, params):
        self.type_name = type_name
        for index, bottom in enumerate(inputs):
            if not isinstance(bottom, Top):
                # pycaffe's exact message (its own test matches it).
                raise TypeError('%s input %d is not a Top (type is %s)'
                                % (type_name, index, type(bottom)))
        self.inputs = inputs
        self.params = dict(params)
        self.ntop = self.params.pop('ntop', 1)
        self.in_place = self.params.pop('in_place', False)
        self.tops = tuple(Top(self, n) for n in range(self.ntop))

    def _get_name(self, names, autonames):
        if self not in names and self.ntop > 0:
            names[self] = self._get_top_name(self.tops[0], names, autonames)
        elif self not in names:
            autonames[self.type_name] += 1
            names[self] = self.type_name + str(autonames[self.type_name])
        return names[self]

    def _get_top_name(self, top, names, autonames):
        if top not in names:
            autonames[top.fn.type_name] += 1
            names[top] = top.fn.type_name + str(autonames[top.fn.type_name])
        return names[top]

    def _update(self, params):
        self.params.update(params)

    def _to_proto(self, layers, names, autonames):
        if self in layers:
            return
        bottom_names = []
        for inp in self.inputs:
            inp._to_proto(layers, names, autonames)
            bottom_names.append(layers[inp.fn].top[inp.n])
        layer = caffe_pb2.LayerParameter()
        layer.type = self.type_name
        layer.bottom.extend(bottom_names)
        if self.in_place:
            layer.top.extend(layer.bottom)
        else:
            for top in self.tops:
                layer.top.append(self._get_top_name(top, names, autonames))
        layer.name = self._get_name(names, autonames)
        for key, value in self.params.items():
            if key.endswith('param'):
                assign_proto(layer, key, value)
                continue
            try:
                assign_proto(getattr(layer, _param_names[self.type_name] + '_param'), key, value)
            except (AttributeError, KeyError):
                assign_proto(layer, key, value)
        layers[self] = layer


class NetSpec:
    """Named tops, assigned as attributes (``n.conv1 = L.Convolution(n.data, ...)``) or items;
    ``to_proto()`` emits every layer they need, using those names."""

    def __init__(self):
        super().__setattr__('tops', OrderedDict())

    def __setattr__(self, name, value):
        self.tops[name] = value

    def __getattr__(self, name):
        try:
            return self.tops[name]
        except KeyError:
            raise AttributeError('NetSpec has no top named %r' % name) from None

    def __setitem__(self, key, value):
        self.tops[key] = value

    def __getitem__(self, item):
        return self.tops[item]

    def __delitem__(self, name):
        del self.tops[name]

    def keys(self):
        return list(self.tops)

    def vals(self):
        return list(self.tops.values())

    def update(self, name, params):
        """Add or change keyword parameters of the layer producing top ``name``."""
        self.tops[name]._update(params)

    def to_proto(self):
        names = {top: name for name, top in self.tops.items()}
        autonames = Counter()
        layers = OrderedDict()
        for top in self.tops.values():
            top._to_proto(layers, names, autonames)
        net = caffe_pb2.NetParameter()
        net.layer.extend(layers.values())
        return net


class Layers:
    """``L.<Type>(*bottoms, **params)`` records a layer of that type and returns its top(s)."""

    def __getattr__(self, name):
        if name.startswith('__'):
            raise AttributeError(name)

        def layer_fn(*args, **kwargs):
            fn = Function(name, args, kwargs)
            if fn.ntop == 0:
                return fn
            if fn.ntop == 1:
                return fn.tops[0]
            return fn.tops
        layer_fn.__name__ = name
        return layer_fn


class Parameters:
    """``P.<Type>.<CONSTANT>``: enum values of ``<Type>Parameter``, e.g. ``P.Pooling.MAX``."""

    def __getattr__(self, name):
        if name.startswith('__'):
            raise AttributeError(name)
        message = getattr(caffe_pb2, name + 'Parameter', None)
        if message is None:
            raise AttributeError('caffe_pb2 has no message %sParameter' % name)

        class Param:
            def __getattr__(self, param_name):
                return getattr(message, param_name)
        return Param()


_param_names = param_name_dict()
layers = Layers()
params = Parameters()
