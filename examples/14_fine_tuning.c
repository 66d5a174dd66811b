/* 14_fine_tuning.c - fine-tuning (D2L 14.2): load a pretrained model, replace its output
 * layer, freeze the rest and train only the new head.
 *
 * The PyTorch code it mirrors:
 *
 *   backbone = nn.Sequential(nn.Linear(2, 32), nn.ReLU(), nn.Linear(32, 32), nn.ReLU())
 *   pretrained = nn.Sequential(backbone, nn.Linear(32, 4))   # task A: the quadrant of x
 *   ... train on task A ...; save_file(pretrained.state_dict(), "pretrained.safetensors")
 *
 *   net = nn.Sequential(nn.Sequential(nn.Linear(2, 32), nn.ReLU(), nn.Linear(32, 32), nn.ReLU()),
 *                       nn.Linear(32, 4))
 *   net.load_state_dict(load_file("pretrained.safetensors"))          # strict
 *   net[1] = nn.Linear(32, 2)                                         # task B: a new head
 *   for p in net[0].parameters(): p.requires_grad_(False)             # freeze the backbone
 *   trainer = torch.optim.Adam(filter(lambda p: p.requires_grad, net.parameters()), lr=0.01)
 *   ... train on task B: is x in the first or third quadrant (x1 x2 > 0)? ...
 *
 * Task B is an XOR of the signs, which no linear model of the raw x solves, but a linear
 * head on the features learned for task A (which quadrant) does. brick has no
 * "net[1] = ..." for a Sequential: the new model is a Sequential holding a reference to the
 * loaded backbone (bk_module_ref, freed once) and the new head, which is what the
 * assignment makes in torch too. The file is written with bk_module_save, the same
 * safetensors a PyTorch state dict exports to (examples/pytorch_interop.py). Prints the
 * accuracies and checks that the frozen backbone did not move; exits 1 unless the head
 * reaches 95 % on task B.
 */
#include "common.h"

#include <stdlib.h>
#include <unistd.h>

#define N 1000
#define H 32

static float xs[N * 2];
static int64_t quadrant[N], same_sign[N];

static bk_module *backbone_new(void) {
    return bk_nn_sequential(4, bk_nn_linear(2, H), bk_nn_relu(), bk_nn_linear(H, H), bk_nn_relu());
}

/* steps of full-batch Adam on cross entropy; returns the final accuracy, or -1 */
static double train(bk_module *net, const int64_t *labels, int steps) {
    bk_optim *opt = bk_optim_adam(net, BK_ADAM_DEFAULTS(0.01));
    if (!opt) return -1;
    double acc = -1;
    for (int s = 0; s < steps; s++) {
        bk_tensor *logits = bk_forward(net, bk_from_data(BK_SHAPE(N, 2), xs)); // (N, classes)
        bk_tensor *loss = bk_cross_entropy(logits, labels, N, BK_REDUCTION_MEAN);
        bk_optim_zero_grad(opt);
        if (!loss || bk_backward(loss) != 0 || bk_optim_step(opt) != 0) break;
        if (s == steps - 1) {
            int64_t C = logits->shape[1], right = 0;
            for (int64_t i = 0; i < N; i++) {
                int64_t best = 0;
                for (int64_t c = 1; c < C; c++)
                    if (logits->data[i * C + c] > logits->data[i * C + best]) best = c;
                right += best == labels[i];
            }
            acc = (double)right / N;
        }
        bk_arena_reset(NULL);
    }
    bk_optim_free(opt);
    return acc;
}

static void freeze(bk_module *m, void *ud) {
    (void)ud;
    for (int i = 0; i < m->n_params; i++) bk_module_set_trainable(m, m->params[i].name, false);
}

/* a fingerprint of the backbone's weights */
static double weight_sum(const bk_module *m) {
    bk_param_list *l = bk_module_named(m, BK_PARAMS);
    double s = 0;
    for (int i = 0; l && i < l->n; i++)
        for (int64_t k = 0; k < l->tensors[i]->numel; k++) s += (double)l->tensors[i]->data[k] * (k % 7 + 1);
    bk_param_list_free(l);
    return s;
}

int main(void) {
    int status = 1;
    bk_manual_seed(0);
    for (int i = 0; i < N; i++) {
        float a = 2 * bk_rng_uniform(NULL) - 1, b = 2 * bk_rng_uniform(NULL) - 1;
        xs[2 * i] = a, xs[2 * i + 1] = b;
        quadrant[i] = (a < 0) + 2 * (b < 0);
        same_sign[i] = (a > 0) == (b > 0);
    }
    char path[64];
    snprintf(path, sizeof path, "/tmp/brick_14_pretrained_%ld.safetensors", (long)getpid());
    bk_module *pretrained = NULL, *net = NULL, *model = NULL;

    /* 1. pretraining on task A, saved as a state dict */
    pretrained = bk_nn_sequential(2, backbone_new(), bk_nn_linear(H, 4));
    double acc_a = pretrained ? train(pretrained, quadrant, 200) : -1;
    if (acc_a < 0 || bk_module_save(pretrained, path) != 0) goto done;
    printf("task A (quadrant, 4 classes): accuracy %.1f %% after pretraining; saved to %s\n", 100 * acc_a,
           path);

    /* 2. a new program: the same architecture, the saved weights (strict: every name and shape) */
    net = bk_nn_sequential(2, backbone_new(), bk_nn_linear(H, 4));
    if (!net || bk_module_load(net, path, true) != 0) goto done;

    /* 3. a new head on the loaded backbone, which is frozen */
    bk_module *backbone = bk_nn_sequential_get(net, 0);
    model = bk_nn_sequential(2, bk_module_ref(backbone), bk_nn_linear(H, 2));
    if (!model) goto done;
    bk_module_apply(backbone, freeze, NULL);
    if (print_parameters(model) != 0) goto done;
    double before = weight_sum(backbone);

    /* 4. only the head trains on task B */
    double acc_b = train(model, same_sign, 200);
    if (acc_b < 0) goto done;
    bool moved = weight_sum(backbone) != before;
    printf("task B (x1 x2 > 0, 2 classes): accuracy %.1f %% training only the head; backbone %s\n",
           100 * acc_b, moved ? "CHANGED" : "unchanged");
    bk_module_print(model, stdout);
    if (acc_b >= 0.95 && !moved) status = 0;
    else if (!bk_last_error()[0])
        bk_set_error("task B accuracy %.3f (want >= 0.95) or a frozen weight moved", acc_b);

done:
    remove(path);
    bk_module_free(model);
    bk_module_free(net);
    bk_module_free(pretrained);
    return example_exit("14_fine_tuning", status);
}
