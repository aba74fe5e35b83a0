/* Random fills from a counter-based generator: value i of a fill is a hash of (seed, counter + i), so
 * a fill needs no state on the device and a launch of any size gives the same numbers.
 *
 * The hash is SplitMix64's finaliser (Steele, Lea, Flood 2014) of the seed-mixed counter; uniforms
 * take its top 53 (double) or 24 (float) bits, so they lie in [0, 1) exactly. Caffe's numbers are not
 * reproduced bit for bit on a device; the distributions are.
 */
DEVICE_FN cct_u64 cct_mix(cct_u64 z)
{
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* A uniform in [0, 1) from draw number `draw` of stream `seed`. */
DEVICE_FN REAL cct_uniform(cct_u64 seed, cct_u64 draw)
{
    const cct_u64 bits = cct_mix(seed + (draw + 1) * 0x9e3779b97f4a7c15ULL);
#if defined(CCT_DOUBLE)
    return (REAL)(bits >> 11) * (REAL)1.1102230246251565e-16;
#else
    return (REAL)(cct_u32)(bits >> 40) * (REAL)5.9604644775390625e-8f;
#endif
}

KERNEL rng_uniform(const int n, const cct_u64 seed, const cct_u64 counter, const REAL low,
                   const REAL high, ARRAY(REAL, out))
{
    OFFSET(out);
    KERNEL_LOOP(i, n) {
        const REAL value = low + (high - low) * cct_uniform(seed, counter + (cct_u64)i);
        /* low + (high - low) * u can round up to high in float; [low, high) is the promise. */
        out[i] = value < high ? value : low;
    }
}

/* Box-Muller on two draws per value (1 - u in (0, 1] keeps the log finite). */
KERNEL rng_gaussian(const int n, const cct_u64 seed, const cct_u64 counter, const REAL mean,
                    const REAL std, ARRAY(REAL, out))
{
    OFFSET(out);
    KERNEL_LOOP(i, n) {
        const cct_u64 draw = counter + 2 * (cct_u64)i;
        const REAL radius = sqrt((REAL)-2 * log((REAL)1 - cct_uniform(seed, draw)));
        const REAL angle = (REAL)6.283185307179586 * cct_uniform(seed, draw + 1);
        out[i] = mean + std * radius * cos(angle);
    }
}

/* Dropout's keep mask: 1 where u >= ratio (Bernoulli(1 - ratio)), else 0. */
KERNEL rng_bernoulli_mask(const int n, const cct_u64 seed, const cct_u64 counter, const REAL ratio,
                          ARRAY(unsigned char, mask))
{
    OFFSET(mask);
    KERNEL_LOOP(i, n) mask[i] = cct_uniform(seed, counter + (cct_u64)i) >= ratio ? 1 : 0;
}
