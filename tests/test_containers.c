/* test_containers.c - nn.ModuleList and nn.ModuleDict (bk_nn_module_list, bk_nn_module_dict):
 * names, printing and state-dict keys as torch 1.13 gives them, replacing a key in place,
 * no forward of their own, and a block of one's own that runs its list's children.
 *
 * Expected strings come from torch 1.13 (/usr/bin/python3): print(m), the names of
 * named_parameters() and of state_dict().
 */
#include "test.h"

/* A user's block with a ModuleList of layers and a ModuleDict of heads, as
 *   class Net(nn.Module):
 *       def __init__(self):
 *           super().__init__()
 *           self.layers = nn.ModuleList([nn.Linear(4, 4) for _ in range(2)])
 *           self.heads = nn.ModuleDict({'a': nn.Linear(4, 1)})
 *       def forward(self, X):
 *           for layer in self.layers: X = torch.relu(layer(X))
 *           return self.heads['a'](X) */
typedef struct net {
    bk_module base;
    bk_module *layers, *heads;
} net;

static bk_tensor *net_forward(bk_module *m, bk_tensor *X) {
    net *self = (net *)m;
    for (int i = 0; i < self->layers->n_children; i++)
        X = bk_relu(bk_forward(bk_module_child(self->layers, i), X));
    return bk_forward(bk_module_child_by_name(self->heads, "a"), X); // (N, 1)
}

static const bk_module_class NET = {"Net", net_forward, NULL, NULL};

static bk_module *net_new(void) {
    net *self = (net *)bk_module_new(&NET, sizeof(net));
    if (!self) return NULL;
    self->layers = bk_module_add(&self->base, "layers", bk_nn_module_list());
    self->heads = bk_module_add(&self->base, "heads", bk_nn_module_dict());
    bool ok = self->layers && self->heads;
    for (int i = 0; ok && i < 2; i++) ok = bk_nn_module_list_append(self->layers, bk_nn_linear(4, 4)) == 0;
    if (!ok || bk_nn_module_dict_set(self->heads, "a", bk_nn_linear(4, 1)) != 0) {
        bk_module_free(&self->base);
        return NULL;
    }
    return &self->base;
}

static void check_repr(const bk_module *m, const char *want) {
    char buf[2048];
    bk_module_repr(m, buf, sizeof buf);
    CHECK(strcmp(buf, want) == 0);
    if (strcmp(buf, want)) fprintf(stderr, "#   got:\n%s\n#   want:\n%s\n", buf, want);
}

static void check_names(const bk_module *m, bk_named_kind which, const char *want) {
    bk_param_list *l = bk_module_named(m, which);
    char got[1024] = "";
    for (int i = 0; l && i < l->n; i++) {
        size_t len = strlen(got);
        snprintf(got + len, sizeof got - len, "%s%s", i ? "," : "", l->names[i]);
    }
    CHECK(l && strcmp(got, want) == 0);
    if (strcmp(got, want)) fprintf(stderr, "#   got %s, want %s\n", got, want);
    bk_param_list_free(l);
}

TEST(module_list) {
    bk_module *l = bk_nn_module_list();
    check_repr(l, "ModuleList()");
    CHECK(bk_nn_module_list_append(l, bk_nn_linear(4, 3)) == 0);
    CHECK(bk_nn_module_list_append(l, bk_nn_relu()) == 0);
    CHECK(bk_nn_module_list_append(l, bk_nn_linear(3, 2)) == 0);
    CHECK(bk_nn_module_list_append(l, bk_nn_linear(3, 2)) == 0);
    check_repr(l,
               "ModuleList(\n"
               "  (0): Linear(in_features=4, out_features=3, bias=True)\n"
               "  (1): ReLU()\n"
               "  (2): Linear(in_features=3, out_features=2, bias=True)\n"
               "  (3): Linear(in_features=3, out_features=2, bias=True)\n"
               ")");
    check_names(l, BK_PARAMS, "0.weight,0.bias,2.weight,2.bias,3.weight,3.bias");
    CHECK(l->n_children == 4 && !strcmp(bk_module_name(bk_module_child(l, 1)), "ReLU"));
    /* torch: Module [ModuleList] is missing the required "forward" function */
    bk_clear_error();
    CHECK(bk_forward(l, bk_ones(BK_SHAPE(2, 4))) == NULL &&
          strstr(bk_last_error(), "ModuleList has no forward"));
    bk_module_free(l);
}

TEST(module_dict) {
    bk_module *d = bk_nn_module_dict();
    check_repr(d, "ModuleDict()");
    CHECK(bk_nn_module_dict_set(d, "enc", bk_nn_linear(4, 3)) == 0);
    CHECK(bk_nn_module_dict_set(d, "act", bk_nn_tanh()) == 0);
    CHECK(bk_nn_module_dict_set(d, "enc", bk_nn_linear(4, 5)) == 0); /* replaced in place */
    CHECK(bk_nn_module_dict_set(d, "out", bk_nn_linear(5, 1)) == 0);
    check_repr(d,
               "ModuleDict(\n"
               "  (enc): Linear(in_features=4, out_features=5, bias=True)\n"
               "  (act): Tanh()\n"
               "  (out): Linear(in_features=5, out_features=1, bias=True)\n"
               ")");
    check_names(d, BK_PARAMS, "enc.weight,enc.bias,out.weight,out.bias");
    CHECK_FAILS_INT(bk_nn_module_dict_set(d, "a.b", bk_nn_relu()), "invalid name \"a.b\"");
    CHECK_FAILS_INT(bk_nn_module_dict_set(d, "", bk_nn_relu()), "invalid name \"\"");
    CHECK_FAILS_INT(bk_nn_module_list_append(d, bk_nn_relu()), "expected a ModuleList, got ModuleDict");
    CHECK(d->n_children == 3);
    bk_module_free(d);
}

TEST(inside_a_block) {
    bk_manual_seed(1);
    bk_module *m = net_new();
    CHECK(m != NULL);
    check_repr(m,
               "Net(\n"
               "  (layers): ModuleList(\n"
               "    (0): Linear(in_features=4, out_features=4, bias=True)\n"
               "    (1): Linear(in_features=4, out_features=4, bias=True)\n"
               "  )\n"
               "  (heads): ModuleDict(\n"
               "    (a): Linear(in_features=4, out_features=1, bias=True)\n"
               "  )\n"
               ")");
    check_names(m, BK_STATE,
                "layers.0.weight,layers.0.bias,layers.1.weight,layers.1.bias,heads.a.weight,heads.a.bias");
    bk_tensor *X = bk_rand(BK_SHAPE(3, 4));
    bk_tensor *Y = bk_forward(m, X); // (3, 1)
    CHECK(Y && Y->ndim == 2 && Y->shape[0] == 3 && Y->shape[1] == 1);
    CHECK(Y && bk_backward(bk_sum(Y)) == 0);
    CHECK(bk_module_get(m, "layers.0.weight")->grad != NULL);
    bk_module_free(m);
}

int main(void) {
    RUN(module_list);
    RUN(module_dict);
    RUN(inside_a_block);
    return test_summary("test_containers");
}
