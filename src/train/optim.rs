//! Adam with a ramped coupled L2 penalty, and global gradient-norm clipping.

use burn::module::{AutodiffModule, ModuleVisitor, Param};
use burn::optim::adaptor::OptimizerAdaptor;
use burn::optim::decay::WeightDecayConfig;
use burn::optim::{Adam, AdamConfig, GradientsParams, Optimizer};
use burn::prelude::*;
use burn::tensor::backend::AutodiffBackend;

use super::config::TrainConfig;
use crate::model::LangevinFlow;

/// The optimiser of a LangevinFlow model on autodiff backend `B`.
pub type Optim<B> = OptimizerAdaptor<Adam, LangevinFlow<B>, B>;

/// Adam with `weight_decay` as Burn's coupled L2 term (`g + weight_decay · θ`).
///
/// Burn fixes the penalty when the optimiser is built, so the ramp of spec §7 builds a new one
/// each epoch and moves the moment estimates over with [`with_weight_decay`].
pub fn adam<B: AutodiffBackend>(train: &TrainConfig, weight_decay: f64) -> Optim<B> {
    AdamConfig::new()
        .with_beta_1(train.betas[0] as f32)
        .with_beta_2(train.betas[1] as f32)
        .with_epsilon(train.eps as f32)
        .with_weight_decay(
            (weight_decay > 0.0).then(|| WeightDecayConfig::new(weight_decay as f32)),
        )
        .init()
}

/// The same optimiser state (step counts and moments) under a new L2 penalty.
pub fn with_weight_decay<B: AutodiffBackend>(
    optim: &Optim<B>,
    train: &TrainConfig,
    weight_decay: f64,
) -> Optim<B> {
    adam(train, weight_decay).load_record(optim.to_record())
}

/// Scales all gradients by one factor so that their joint L2 norm is at most `max_norm`, as
/// PyTorch's `clip_grad_norm_` does; returns the norm before clipping.
///
/// Burn's own norm clipping works on each parameter tensor separately, which changes the
/// direction of the update; the global form only shortens it.
pub fn clip_grad_norm<B: AutodiffBackend, M: AutodiffModule<B>>(
    module: &M,
    grads: &mut GradientsParams,
    max_norm: f64,
) -> f64 {
    let mut norm = SquaredNorm::<B> { grads, total: None };
    module.visit(&mut norm);
    let total = norm
        .total
        .map(|t| t.into_scalar().elem::<f64>().sqrt())
        .unwrap_or(0.0);
    let coef = max_norm / (total + 1e-6);
    if coef < 1.0 {
        module.visit(&mut Scale { grads, coef });
    }
    total
}

struct SquaredNorm<'a, B: AutodiffBackend> {
    grads: &'a GradientsParams,
    total: Option<Tensor<B::InnerBackend, 1>>,
}

impl<B: AutodiffBackend> ModuleVisitor<B> for SquaredNorm<'_, B> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        if let Some(g) = self.grads.get::<B::InnerBackend, D>(param.id) {
            let sq = g.powi_scalar(2).sum();
            self.total = Some(match self.total.take() {
                Some(t) => t + sq,
                None => sq,
            });
        }
    }
}

struct Scale<'a> {
    grads: &'a mut GradientsParams,
    coef: f64,
}

impl<B: AutodiffBackend> ModuleVisitor<B> for Scale<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<B, D>>) {
        if let Some(g) = self.grads.remove::<B::InnerBackend, D>(param.id) {
            self.grads.register(param.id, g.mul_scalar(self.coef));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::backend::{Autodiff, NdArray};
    use burn::nn::{Linear, LinearConfig};

    type Ad = Autodiff<NdArray<f32>>;

    fn grads_of(layer: &Linear<Ad>, scale: f32) -> GradientsParams {
        let device = Default::default();
        let x = Tensor::<Ad, 2>::ones([1, 3], &device).mul_scalar(scale);
        let loss = layer.forward(x).sum();
        GradientsParams::from_grads(loss.backward(), layer)
    }

    fn norm(layer: &Linear<Ad>, grads: &GradientsParams) -> f64 {
        let w = grads
            .get::<NdArray<f32>, 2>(layer.weight.id)
            .unwrap()
            .powi_scalar(2)
            .sum()
            .into_scalar();
        let b = grads
            .get::<NdArray<f32>, 1>(layer.bias.as_ref().unwrap().id)
            .unwrap()
            .powi_scalar(2)
            .sum()
            .into_scalar();
        f64::from(w + b).sqrt()
    }

    #[test]
    fn global_clipping_scales_every_gradient_by_one_factor() {
        let device = Default::default();
        let layer = LinearConfig::new(3, 2).init::<Ad>(&device);
        // d(sum(xW + b))/dW = x per output column: weight grads 10, bias grads 1.
        let mut grads = grads_of(&layer, 10.0);
        let before = norm(&layer, &grads);
        assert!((before - (6.0f64 * 100.0 + 2.0).sqrt()).abs() < 1e-4);
        let reported = clip_grad_norm(&layer, &mut grads, 1.0);
        assert!((reported - before).abs() < 1e-4);
        assert!((norm(&layer, &grads) - 1.0).abs() < 1e-4);
        let bias = grads
            .get::<NdArray<f32>, 1>(layer.bias.as_ref().unwrap().id)
            .unwrap()
            .into_data()
            .to_vec::<f32>()
            .unwrap();
        // Direction kept: bias/weight ratio is still 1/10.
        assert!((f64::from(bias[0]) - 1.0 / before).abs() < 1e-5);

        // Below the limit nothing changes.
        let mut grads = grads_of(&layer, 0.01);
        let before = norm(&layer, &grads);
        clip_grad_norm(&layer, &mut grads, 10.0);
        assert_eq!(norm(&layer, &grads), before);
    }

    #[test]
    fn rebuilding_for_a_new_penalty_keeps_the_moments() {
        let device = Default::default();
        let train = TrainConfig::default();
        let config = crate::model::LangevinFlowConfig {
            hidden_size: 4,
            d_ff: 8,
            ..Default::default()
        };
        let model = config.init::<Ad>(3, 4, &device).unwrap();
        let x = Tensor::<Ad, 3>::ones([2, 5, 3], &device);
        let y = Tensor::<Ad, 3>::ones([2, 6, 4], &device);
        let grads =
            GradientsParams::from_grads(model.training_loss(x, y, 0).total.backward(), &model);
        let mut optim = adam::<Ad>(&train, 0.0);
        let _model = optim.step(1e-2, model, grads);
        let moved = with_weight_decay(&optim, &train, 1e-3);
        let (before, after) = (optim.to_record(), moved.to_record());
        assert!(!before.is_empty());
        assert_eq!(
            before.keys().collect::<std::collections::BTreeSet<_>>(),
            after.keys().collect::<std::collections::BTreeSet<_>>()
        );
    }
}
