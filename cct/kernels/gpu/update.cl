/* The solvers' per-element updates (Caffe's sgd/nesterov/adagrad/rmsprop/adadelta/adam_solver.cpp),
 * in the operation order of cct's CPU solvers (cct/kernels/update.pyx, cct/solver/adaptive.py).
 *
 * g is the param's diff; each adaptive rule leaves the step in diff (the caller subtracts it from
 * data), as Caffe's ComputeUpdateValue does.
 */
#define RULE_NESTEROV 0
#define RULE_ADAGRAD 1
#define RULE_RMSPROP 2
#define RULE_ADADELTA 3
#define RULE_ADAM 4
#define RULE_MOMENTUM 5

/* Caffe's whole momentum-SGD step: normalise, regularise, history = momentum*history + rate*g,
 * diff = history, data -= history. */
KERNEL sgd_update(const int n, ARRAY(REAL, data), ARRAY(REAL, diff), ARRAY(REAL, history),
                  const REAL normalize, const REAL decay, const int l1, const REAL rate,
                  const REAL momentum)
{
    OFFSET(data); OFFSET(diff); OFFSET(history);
    KERNEL_LOOP(i, n) {
        REAL g = diff[i];
        if (normalize != 1)
            g = g * normalize;
        if (decay != 0) {
            /* caffe_cpu_sign: (0 < x) - (x < 0), so a NaN weight contributes 0. */
            const REAL w = data[i];
            g = l1 ? g + decay * (REAL)((w > 0) - (w < 0)) : g + decay * w;
        }
        g = g * rate;
        g = history[i] * momentum + g;
        history[i] = g;
        diff[i] = g;
        data[i] = data[i] - g;
    }
}

/* diff += decay * data (L2) or decay * sign(data) (L1). */
KERNEL regularize(const int n, ARRAY(const REAL, data), ARRAY(REAL, diff), const REAL decay,
                  const int l1)
{
    OFFSET(data); OFFSET(diff);
    KERNEL_LOOP(i, n) {
        const REAL w = data[i];
        diff[i] = l1 ? decay * (REAL)((w > 0) - (w < 0)) + diff[i] : decay * w + diff[i];
    }
}

KERNEL adaptive_update(const int rule, const int n, ARRAY(REAL, diff), ARRAY(REAL, history),
                       ARRAY(REAL, history2), const REAL rate, const REAL momentum,
                       const REAL momentum2, const REAL delta, const REAL correction)
{
    OFFSET(diff); OFFSET(history); OFFSET(history2);
    const REAL one = 1;
    KERNEL_LOOP(i, n) {
        const REAL g = diff[i];
        REAL h = history[i], step;
        switch (rule) {
        case RULE_MOMENTUM:
            h = h * momentum + g * rate;
            step = h;
            break;
        case RULE_NESTEROV: {
            const REAL previous = h;
            h = h * momentum + g * rate;
            step = h * (one + momentum) - previous * momentum;
            break;
        }
        case RULE_ADAGRAD:
            h = h + g * g;
            step = g / (sqrt(h) + delta) * rate;
            break;
        case RULE_RMSPROP:
            h = h * momentum + g * g * (one - momentum);
            step = g / (sqrt(h) + delta) * rate;
            break;
        case RULE_ADADELTA: {
            h = h * momentum + g * g * (one - momentum);
            const REAL u = g * sqrt((history2[i] + delta) / (h + delta));
            history2[i] = history2[i] * momentum + u * u * (one - momentum);
            step = u * rate;
            break;
        }
        case RULE_ADAM: {
            h = h * momentum + g * (one - momentum);
            const REAL v = history2[i] * momentum2 + g * g * (one - momentum2);
            history2[i] = v;
            step = h / (sqrt(v) + delta) * (rate * correction);
            break;
        }
        default:
            step = g;
            break;
        }
        history[i] = h;
        diff[i] = step;
    }
}
