/* hydrophone_worker.detector._power_mel: the frontend's power mel spectrograms, compiled.
 *
 * What numpy spent most of the detector's frontend on (frames, Hann window, 2560-point real FFT, |X|^2, the
 * sparse mel product) in one pass per group of frames that stays in the core's cache, with the FFT run on
 * as many frames at once as one SIMD register holds. The kernel is compiled once per instruction set
 * (AVX-512, AVX2, SSE2 on x86-64; the compiler's default elsewhere) and the best one the CPU has is picked
 * when the module loads; all of them give the same floats bit for bit (power_mel_kernel.h says why).
 * The mel filterbank and the Hann window come from Python (frontend.py is their one definition).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define N_FFT 2560
#define HOP 256
#define COMPLEX_POINTS (N_FFT / 2) /* 1280 = 4^4 * 5 */
#define BINS (N_FFT / 2 + 1)

/* cos and sin of 2 pi / 5 and 4 pi / 5, for the radix-5 stage */
#define C1 0.309016994374947424f
#define C2 (-0.809016994374947424f)
#define S1 0.951056516295153572f
#define S2 0.587785252292473129f

/* Twiddles e^{-2 pi i k p / n} of the four radix-4 stages (n = 1280, 320, 80, 20) at [stage][3 p + k - 1],
 * and e^{-2 pi i k / 2560} for the real-to-complex split; computed in double once, stored as float. */
static float tw_re[4][COMPLEX_POINTS], tw_im[4][COMPLEX_POINTS];
static float post_re[COMPLEX_POINTS], post_im[COMPLEX_POINTS];

static void make_twiddles(void) {
    for (int stage = 0, n = COMPLEX_POINTS; stage < 4; stage++, n /= 4)
        for (int p = 0; p < n / 4; p++)
            for (int k = 1; k < 4; k++) {
                const double angle = -2.0 * M_PI * k * p / n;
                tw_re[stage][3 * p + k - 1] = (float)cos(angle);
                tw_im[stage][3 * p + k - 1] = (float)sin(angle);
            }
    for (int k = 0; k < COMPLEX_POINTS; k++) {
        post_re[k] = (float)cos(-2.0 * M_PI * k / N_FFT);
        post_im[k] = (float)sin(-2.0 * M_PI * k / N_FFT);
    }
}

/* One window's job: its reflect-padded samples (n_frames frames at hop 256) -> out[n_mels][n_frames]. */
struct request {
    const float *padded;
    int64_t n_frames;
    const float *hann;
    const int32_t *indptr, *indices;
    const float *weights;
    int64_t n_mels;
    float *out;
};

typedef float quad __attribute__((vector_size(16)));
typedef int lanes4 __attribute__((vector_size(16)));

#if defined(__clang__)
#define SHUFFLE(a, b, ...) __builtin_shufflevector(a, b, __VA_ARGS__)
#else
#define SHUFFLE(a, b, ...) __builtin_shuffle(a, b, (lanes4){__VA_ARGS__})
#endif

static inline __attribute__((always_inline)) quad load_quad(const float *p) {
    quad q;
    memcpy(&q, p, sizeof q);
    return q;
}

/* rows[j] holds lane j's values at four consecutive positions; position i goes to dst + i * stride. */
static inline __attribute__((always_inline)) void transpose_store(const quad rows[4], float *dst, int stride) {
    const quad t0 = SHUFFLE(rows[0], rows[1], 0, 4, 1, 5), t1 = SHUFFLE(rows[2], rows[3], 0, 4, 1, 5);
    const quad t2 = SHUFFLE(rows[0], rows[1], 2, 6, 3, 7), t3 = SHUFFLE(rows[2], rows[3], 2, 6, 3, 7);
    const quad out[4] = {SHUFFLE(t0, t1, 0, 1, 4, 5), SHUFFLE(t0, t1, 2, 3, 6, 7), SHUFFLE(t2, t3, 0, 1, 4, 5),
                         SHUFFLE(t2, t3, 2, 3, 6, 7)};
    for (int i = 0; i < 4; i++)
        memcpy(dst + (size_t)i * stride, &out[i], sizeof out[i]);
}

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#pragma GCC push_options
#pragma GCC target("avx512f,avx512dq,avx512bw,avx512vl,avx2,avx")
#define LANES 16
#define NAME(x) x##_avx512
#include "power_mel_kernel.h"
#undef LANES
#undef NAME
#pragma GCC pop_options

#pragma GCC push_options
#pragma GCC target("avx2,avx")
#define LANES 8
#define NAME(x) x##_avx2
#include "power_mel_kernel.h"
#undef LANES
#undef NAME
#pragma GCC pop_options
#define HAVE_X86_VARIANTS 1
#endif

#define LANES 4
#define NAME(x) x##_generic
#include "power_mel_kernel.h"
#undef LANES
#undef NAME

struct variant {
    const char *name;
    int lanes;
    void (*run)(const struct request *, float *);
};

/* Best first; `supported` is filled at module load from the CPU's flags. */
static const struct variant variants[] = {
#ifdef HAVE_X86_VARIANTS
    {"avx512", 16, power_mel_avx512},
    {"avx2", 8, power_mel_avx2},
    {"sse2", 4, power_mel_generic},
#else
    {"generic", 4, power_mel_generic},
#endif
};
#define N_VARIANTS (sizeof variants / sizeof variants[0])
static int supported[N_VARIANTS];

static void detect_cpu(void) {
#ifdef HAVE_X86_VARIANTS
    __builtin_cpu_init();
    supported[0] = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq") &&
                   __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl");
    supported[1] = __builtin_cpu_supports("avx2");
    supported[2] = 1;
#else
    supported[0] = 1;
#endif
}

/* Reflection without repeating the edge, any number of times over (numpy.pad's "reflect"). */
static int64_t reflect(int64_t i, int64_t n) {
    if (n == 1)
        return 0;
    const int64_t period = 2 * (n - 1);
    i %= period;
    if (i < 0)
        i += period;
    return i < n ? i : period - i;
}

static int get_buffer(PyObject *obj, Py_buffer *view, const char *name, const char *kinds, int writable) {
    const int flags = PyBUF_C_CONTIGUOUS | PyBUF_FORMAT | (writable ? PyBUF_WRITABLE : 0);
    if (PyObject_GetBuffer(obj, view, flags) < 0)
        return -1;
    const char *format = view->format ? view->format : "B";
    while (*format == '@' || *format == '=' || *format == '<')
        format++;
    const int itemsize = kinds[0] == 'q' ? 8 : 4;
    if (format[0] == '\0' || format[1] != '\0' || !strchr(kinds, format[0]) || view->itemsize != itemsize) {
        PyErr_Format(PyExc_TypeError, "%s must be a C-contiguous %s array", name,
                     kinds[0] == 'f' ? "float32" : kinds[0] == 'q' ? "int64" : "int32");
        PyBuffer_Release(view);
        view->obj = NULL;
        return -1;
    }
    return 0;
}

static const struct variant *choose(const char *name) {
    for (size_t v = 0; v < N_VARIANTS; v++)
        if (supported[v] && (name == NULL || strcmp(name, variants[v].name) == 0))
            return &variants[v];
    PyErr_Format(PyExc_ValueError, "variant %s is not compiled in or not supported by this CPU", name);
    return NULL;
}

static int check_filterbank(const Py_buffer *indptr, const Py_buffer *indices, const Py_buffer *weights) {
    const Py_ssize_t n_mels = indptr->len / 4 - 1, nnz = indices->len / 4;
    const int32_t *ptr = indptr->buf, *idx = indices->buf;
    if (n_mels < 1 || weights->len != indices->len || ptr[0] != 0 || ptr[n_mels] != nnz) {
        PyErr_SetString(PyExc_ValueError, "indptr, indices and weights must be one CSR matrix");
        return -1;
    }
    for (Py_ssize_t r = 0; r < n_mels; r++)
        if (ptr[r + 1] < ptr[r]) {
            PyErr_SetString(PyExc_ValueError, "indptr must not decrease");
            return -1;
        }
    for (Py_ssize_t j = 0; j < nnz; j++)
        if (idx[j] < 0 || idx[j] >= BINS) {
            PyErr_Format(PyExc_ValueError, "filterbank column %d is outside the %d STFT bins", idx[j], BINS);
            return -1;
        }
    return 0;
}

static PyObject *py_power_mel(PyObject *Py_UNUSED(self), PyObject *args, PyObject *kwargs) {
    static char *keywords[] = {"signal", "starts", "length", "hann", "indptr", "indices", "weights", "out",
                               "variant", NULL};
    PyObject *objects[7];
    Py_ssize_t length;
    const char *variant_name = NULL;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "OOnOOOOO|$z", keywords, &objects[0], &objects[1], &length,
                                     &objects[2], &objects[3], &objects[4], &objects[5], &objects[6],
                                     &variant_name))
        return NULL;
    const struct variant *variant = choose(variant_name);
    if (variant == NULL)
        return NULL;

    static const char *names[] = {"signal", "starts", "hann", "indptr", "indices", "weights", "out"};
    static const char *kinds[] = {"f", "ql", "f", "il", "il", "f", "f"};
    Py_buffer views[7] = {{0}};
    PyObject *result = NULL;
    float *work = NULL;
    for (int i = 0; i < 7; i++)
        if (get_buffer(objects[i], &views[i], names[i], kinds[i], i == 6) < 0)
            goto done;
    const Py_ssize_t n_signal = views[0].len / 4, n_windows = views[1].len / 8;
    const int64_t *starts = views[1].buf;
    if (views[2].len != N_FFT * 4) {
        PyErr_Format(PyExc_ValueError, "hann must have %d samples, got %zd", N_FFT, views[2].len / 4);
        goto done;
    }
    if (length < 1) {
        PyErr_Format(PyExc_ValueError, "length must be positive, got %zd", length);
        goto done;
    }
    if (check_filterbank(&views[3], &views[4], &views[5]) < 0)
        goto done;
    const int64_t n_mels = views[3].len / 4 - 1, n_frames = 1 + length / HOP;
    if (views[6].len != n_windows * n_mels * n_frames * 4) {
        PyErr_Format(PyExc_ValueError, "out must hold (%zd, %lld, %lld) float32", n_windows, (long long)n_mels,
                     (long long)n_frames);
        goto done;
    }
    for (Py_ssize_t w = 0; w < n_windows; w++)
        if (starts[w] < 0 || starts[w] > n_signal - length) {
            PyErr_Format(PyExc_ValueError, "window %zd (start %lld, length %zd) is outside the %zd samples", w,
                         (long long)starts[w], length, n_signal);
            goto done;
        }

    /* the FFT's five buffers of lanes floats per point, then one reflect-padded window */
    const size_t fft_floats = (size_t)(4 * COMPLEX_POINTS + BINS) * variant->lanes;
    const size_t bytes = (fft_floats + (size_t)length + N_FFT) * sizeof(float);
    work = aligned_alloc(64, (bytes + 63) / 64 * 64);
    if (work == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    Py_BEGIN_ALLOW_THREADS;
    float *padded = work + fft_floats;
    for (Py_ssize_t w = 0; w < n_windows; w++) {
        const float *window = (const float *)views[0].buf + starts[w];
        memcpy(padded + N_FFT / 2, window, (size_t)length * sizeof(float));
        for (int64_t i = 0; i < N_FFT / 2; i++) {
            padded[i] = window[reflect(i - N_FFT / 2, length)];
            padded[N_FFT / 2 + length + i] = window[reflect(length + i, length)];
        }
        const struct request rq = {padded, n_frames, views[2].buf, views[3].buf, views[4].buf, views[5].buf,
                                   n_mels, (float *)views[6].buf + w * n_mels * n_frames};
        variant->run(&rq, work);
    }
    Py_END_ALLOW_THREADS;
    result = Py_NewRef(Py_None);
done:
    free(work);
    for (int i = 0; i < 7; i++)
        if (views[i].obj != NULL)
            PyBuffer_Release(&views[i]);
    return result;
}

static PyObject *py_variants(PyObject *Py_UNUSED(self), PyObject *Py_UNUSED(ignored)) {
    PyObject *names = PyList_New(0);
    for (size_t v = 0; names != NULL && v < N_VARIANTS; v++)
        if (supported[v]) {
            PyObject *name = PyUnicode_FromString(variants[v].name);
            if (name == NULL || PyList_Append(names, name) < 0) {
                Py_XDECREF(name);
                Py_CLEAR(names);
                break;
            }
            Py_DECREF(name);
        }
    return names;
}

static PyMethodDef methods[] = {
    {"power_mel", (PyCFunction)(void (*)(void))py_power_mel, METH_VARARGS | METH_KEYWORDS,
     "power_mel(signal, starts, length, hann, indptr, indices, weights, out, *, variant=None)\n--\n\n"
     "out[w] = the (n_mels, 1 + length // 256) power mel spectrogram of signal[starts[w]:][:length]\n"
     "(centred 2560-point STFT, reflect padding, hop 256, window hann, mel matrix given in CSR form)."},
    {"variants", py_variants, METH_NOARGS, "The kernels this CPU runs, best (the default) first."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, .m_name = "_power_mel", .m_size = 0, .m_methods = methods};

PyMODINIT_FUNC PyInit__power_mel(void) {
    make_twiddles();
    detect_cpu();
    return PyModule_Create(&module);
}
