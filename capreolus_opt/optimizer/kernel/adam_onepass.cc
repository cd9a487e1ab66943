// One-pass Adam / AMSGrad update for resource variables on the CPU.
//
// TF's ResourceApplyAdam walks each block of memory three times (m, then v, then the variable:
// about 40 bytes per float32 parameter) and ResourceApplyAdamWithAmsgrad four times over whole
// tensors (about 52). This kernel reads param, grad, m, v (and v_hat) once and writes param, m, v
// (and v_hat) once per element: 28 bytes per float32 parameter, 36 with AMSGrad, the floor of an
// Adam step. The arithmetic is TF's, operation for operation, so with floating-point contraction
// off (-ffp-contract=off) the results equal ResourceApplyAdam's bit for bit:
//
//   alpha = lr * sqrt(1 - beta2_power) / (1 - beta1_power)
//   var   = var - (var * weight_decay) * lr         (only when weight_decay != 0)
//   m     = m + (g - m) * (1 - beta1)
//   v     = v + (g * g - v) * (1 - beta2)
//   v_hat = max(v_hat, v)                            (AMSGrad; v_hat replaces v below)
//   var   = var - (m * alpha) / (sqrt(v) + epsilon)
//
// The decoupled weight decay is the same expression as Keras' `variable.assign_sub(variable *
// wd * lr)`, folded in so that AdamW costs no extra pass.
//
// Built by capreolus_opt/optimizer/kernel/__init__.py against the installed TensorFlow.

#define EIGEN_USE_THREADS

#include <cmath>
#include <cstdint>

#include "tensorflow/core/framework/op.h"
#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/framework/resource_var.h"
#include "tensorflow/core/framework/shape_inference.h"
#include "tensorflow/core/kernels/training_op_helpers.h"
#include "unsupported/Eigen/CXX11/Tensor"

namespace capreolus_opt {

using ::tensorflow::DEVICE_CPU;
using ::tensorflow::OpKernel;
using ::tensorflow::OpKernelConstruction;
using ::tensorflow::OpKernelContext;
using ::tensorflow::Tensor;
using ::tensorflow::TensorShapeUtils;
using CPUDevice = Eigen::ThreadPoolDevice;

template <typename T>
struct Scalars {
  T lr, alpha, one_minus_beta1, one_minus_beta2, epsilon, weight_decay;
};

// The per-element update; inlined into each ISA clone below, which vectorises it.
template <typename T, bool kAmsgrad, bool kDecay>
static inline __attribute__((always_inline)) void UpdateRange(
    T* __restrict var, T* __restrict m, T* __restrict v, T* __restrict vhat,
    const T* __restrict g, int64_t n, const Scalars<T>& s) {
  const T lr = s.lr, alpha = s.alpha, c1 = s.one_minus_beta1, c2 = s.one_minus_beta2;
  const T eps = s.epsilon, wd = s.weight_decay;
  for (int64_t i = 0; i < n; ++i) {
    const T gi = g[i];
    T p = var[i];
    if (kDecay) p = p - (p * wd) * lr;
    const T mi = m[i] + (gi - m[i]) * c1;
    T vi = v[i] + (gi * gi - v[i]) * c2;
    m[i] = mi;
    v[i] = vi;
    if (kAmsgrad) {
      const T h = vhat[i];
      vi = h < vi ? vi : h;  // Eigen's cwiseMax: keeps v_hat when either is NaN
      vhat[i] = vi;
    }
    var[i] = p - (mi * alpha) / (std::sqrt(vi) + eps);
  }
}

// One function per dtype, cloned per ISA (resolved once when the library is loaded), so the
// same cached library is fast on AVX-512 and still runs on a plain x86-64 machine.
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define CAPREOLUS_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define CAPREOLUS_CLONES
#endif

#define CAPREOLUS_DEFINE_RANGE(T, NAME)                                                      \
  CAPREOLUS_CLONES void NAME(T* var, T* m, T* v, T* vhat, const T* g, int64_t n,           \
                             const Scalars<T>& s) {                                       \
    const bool decay = s.weight_decay != T(0);                                            \
    if (vhat != nullptr) {                                                                \
      if (decay) return UpdateRange<T, true, true>(var, m, v, vhat, g, n, s);             \
      return UpdateRange<T, true, false>(var, m, v, vhat, g, n, s);                       \
    }                                                                                     \
    if (decay) return UpdateRange<T, false, true>(var, m, v, vhat, g, n, s);              \
    return UpdateRange<T, false, false>(var, m, v, vhat, g, n, s);                        \
  }

CAPREOLUS_DEFINE_RANGE(float, AdamRangeF32)
CAPREOLUS_DEFINE_RANGE(double, AdamRangeF64)

static void AdamRange(float* var, float* m, float* v, float* vhat, const float* g, int64_t n,
                      const Scalars<float>& s) {
  AdamRangeF32(var, m, v, vhat, g, n, s);
}
static void AdamRange(double* var, double* m, double* v, double* vhat, const double* g,
                      int64_t n, const Scalars<double>& s) {
  AdamRangeF64(var, m, v, vhat, g, n, s);
}

template <typename T, bool kAmsgrad>
class OnePassAdamOp : public OpKernel {
 public:
  explicit OnePassAdamOp(OpKernelConstruction* ctx) : OpKernel(ctx) {
    OP_REQUIRES_OK(ctx, ctx->GetAttr("use_locking", &use_locking_));
  }

  void Compute(OpKernelContext* ctx) override {
    constexpr int kSlots = kAmsgrad ? 4 : 3;  // var, m, v (, vhat)
    std::vector<int> ids;
    for (int i = 0; i < kSlots; ++i) ids.push_back(i);
    // Resource variables are locked exclusively whatever use_locking says, as in TF's kernels.
    auto locks = ::tensorflow::MaybeLockVariableInputMutexesInOrder<CPUDevice, T>(
        ctx, use_locking_, /*sparse=*/false, ids);
    Tensor slots[4];
    for (int i = 0; i < kSlots; ++i) {
      OP_REQUIRES_OK(ctx, ::tensorflow::GetInputTensorFromVariable<CPUDevice, T>(
                              ctx, i, use_locking_, /*sparse=*/false, &slots[i]));
      OP_REQUIRES(ctx, slots[i].IsInitialized(),
                  absl::FailedPreconditionError(absl::StrCat(
                      "Attempting to use uninitialized variables: ", requested_input(i))));
    }
    static const char* const kScalarNames[] = {"beta1_power", "beta2_power", "lr", "beta1",
                                               "beta2",       "epsilon",     "weight_decay"};
    T scalar[7];
    for (int i = 0; i < 7; ++i) {
      const Tensor& t = ctx->input(kSlots + i);
      OP_REQUIRES(ctx, TensorShapeUtils::IsScalar(t.shape()),
                  absl::InvalidArgumentError(absl::StrCat(kScalarNames[i], " is not a scalar: ",
                                                          t.shape().DebugString())));
      scalar[i] = t.scalar<T>()();
    }
    const Tensor& grad = ctx->input(kSlots + 7);
    for (int i = 0; i < kSlots; ++i) {
      OP_REQUIRES(ctx, slots[0].shape().IsSameSize(slots[i].shape()),
                  absl::InvalidArgumentError(absl::StrCat(
                      "var and ", requested_input(i), " do not have the same shape ",
                      slots[0].shape().DebugString(), " ", slots[i].shape().DebugString())));
    }
    OP_REQUIRES(ctx, slots[0].shape().IsSameSize(grad.shape()),
                absl::InvalidArgumentError(absl::StrCat(
                    "var and grad do not have the same shape ", slots[0].shape().DebugString(),
                    " ", grad.shape().DebugString())));

    const T beta1_power = scalar[0], beta2_power = scalar[1], lr = scalar[2];
    Scalars<T> s;
    s.lr = lr;
    s.alpha = lr * Eigen::numext::sqrt(T(1) - beta2_power) / (T(1) - beta1_power);
    s.one_minus_beta1 = T(1) - scalar[3];
    s.one_minus_beta2 = T(1) - scalar[4];
    s.epsilon = scalar[5];
    s.weight_decay = scalar[6];

    T* var = slots[0].flat<T>().data();
    T* m = slots[1].flat<T>().data();
    T* v = slots[2].flat<T>().data();
    T* vhat = kAmsgrad ? slots[3].flat<T>().data() : nullptr;
    const T* g = grad.flat<T>().data();
    const int64_t n = grad.NumElements();
    // Units of 64 elements (whole cache lines for both dtypes); per unit: read 4 (5) arrays,
    // write 3 (4), about 20 flops, one sqrt and one division per element.
    constexpr int64_t kUnit = 64;
    const int64_t units = (n + kUnit - 1) / kUnit;
    const double bytes = static_cast<double>(sizeof(T) * kUnit);
    const Eigen::TensorOpCost cost(bytes * (kSlots + 1), bytes * kSlots, 30.0 * kUnit);
    auto shard = [=](Eigen::Index begin, Eigen::Index end) {
      const int64_t lo = begin * kUnit;
      const int64_t hi = std::min<int64_t>(end * kUnit, n);
      AdamRange(var + lo, m + lo, v + lo, vhat == nullptr ? nullptr : vhat + lo, g + lo,
                hi - lo, s);
    };
    ctx->eigen_device<CPUDevice>().parallelFor(units, cost, shard);
  }

 private:
  bool use_locking_;
};

static absl::Status CheckScalarsShape(::tensorflow::shape_inference::InferenceContext* c,
                                      int first, int count) {
  ::tensorflow::shape_inference::ShapeHandle unused;
  for (int i = first; i < first + count; ++i) {
    TF_RETURN_IF_ERROR(c->WithRank(c->input(i), 0, &unused));
  }
  return absl::OkStatus();
}

#define CAPREOLUS_OP_COMMON                                                  \
  Input("beta1_power: T")                                                    \
      .Input("beta2_power: T")                                               \
      .Input("lr: T")                                                        \
      .Input("beta1: T")                                                     \
      .Input("beta2: T")                                                     \
      .Input("epsilon: T")                                                   \
      .Input("weight_decay: T")                                              \
      .Input("grad: T")                                                      \
      .Attr("T: {float, double}")                                            \
      .Attr("use_locking: bool = false")

REGISTER_OP("CapreolusOnePassAdam")
    .Input("var: resource")
    .Input("m: resource")
    .Input("v: resource")
    .CAPREOLUS_OP_COMMON
    .SetShapeFn([](::tensorflow::shape_inference::InferenceContext* c) {
      return CheckScalarsShape(c, 3, 7);
    });

REGISTER_OP("CapreolusOnePassAdamAmsgrad")
    .Input("var: resource")
    .Input("m: resource")
    .Input("v: resource")
    .Input("vhat: resource")
    .CAPREOLUS_OP_COMMON
    .SetShapeFn([](::tensorflow::shape_inference::InferenceContext* c) {
      return CheckScalarsShape(c, 4, 7);
    });

#define CAPREOLUS_REGISTER(T)                                                              \
  REGISTER_KERNEL_BUILDER(Name("CapreolusOnePassAdam")                                     \
                              .Device(DEVICE_CPU)                                          \
                              .HostMemory("var")                                           \
                              .HostMemory("m")                                             \
                              .HostMemory("v")                                             \
                              .TypeConstraint<T>("T"),                                     \
                          OnePassAdamOp<T, false>);                                        \
  REGISTER_KERNEL_BUILDER(Name("CapreolusOnePassAdamAmsgrad")                              \
                              .Device(DEVICE_CPU)                                          \
                              .HostMemory("var")                                           \
                              .HostMemory("m")                                             \
                              .HostMemory("v")                                             \
                              .HostMemory("vhat")                                          \
                              .TypeConstraint<T>("T"),                                     \
                          OnePassAdamOp<T, true>);

CAPREOLUS_REGISTER(float)
CAPREOLUS_REGISTER(double)

}  // namespace capreolus_opt
