/* test_reader_edges.c - the corners of the file readers that the main suites leave out
 * (found with scripts/coverage.sh): every JSON escape in a safetensors header, JSON
 * literals and malformed numbers in places the schema rejects, NULL arguments of the
 * accessors and of bk_safetensors_save, and a model whose state names clash with the
 * checkpoint's "optim." prefix.
 * Files go to a mkdtemp directory under /tmp, removed at the end.
 */
#define _XOPEN_SOURCE 700 /* mkdtemp */

#include "test.h"
#include "files.h"

#include <errno.h>
#include <stdint.h>
#include <unistd.h>

TEST(every_json_escape_decodes) {
    /* name: a \b \f \n \r \t \" \\ \/ U+00E9 U+20AC U+1F600; metadata likewise */
    const char *hdr =
        "{\"__metadata__\":{\"k\\u20ac\":\"v\\b\\f\\r\\t\\n\\/\\u00e9\\u20ac\\ud83d\\ude00\"},"
        "\"a\\b\\f\\n\\r\\t\\\"\\\\\\/\\u00e9\\u20ac\\ud83d\\ude00\":"
        "{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}";
    CHECK(write_st(tpath("esc.safetensors"), hdr, 4));
    bk_safetensors *st = bk_safetensors_load(tpath("esc.safetensors"));
    CHECK(st != NULL);
    if (!st) return;
    CHECK(bk_safetensors_count(st) == 1);
    const char *name = bk_safetensors_name(st, 0);
    CHECK(name && !strcmp(name, "a\b\f\n\r\t\"\\/\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80"));
    const char *v = bk_safetensors_meta(st, "k\xe2\x82\xac");
    CHECK(v && !strcmp(v, "v\b\f\r\t\n/\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80"));
    bk_safetensors_free(st);
}

TEST(literals_and_bad_numbers) {
    /* valid JSON, wrong schema: literals are parsed, then refused */
    static const char *const lits[] = {"true", "false", "null"};
    for (int k = 0; k < 3; k++) {
        char hdr[64];
        snprintf(hdr, sizeof hdr, "{\"x\":%s}", lits[k]);
        CHECK(write_st(tpath("lit.safetensors"), hdr, 0));
        CHECK_ERR(bk_safetensors_load(tpath("lit.safetensors")), "entry 'x' is not an object");
    }
    CHECK(write_st(tpath("num.safetensors"), "{\"x\":-a}", 0));
    CHECK_ERR(bk_safetensors_load(tpath("num.safetensors")), "invalid number");
    CHECK(write_st(tpath("num.safetensors"), "{\"x\":[1.5e+3, -0, 2E7, 0.25]}", 0));
    CHECK_ERR(bk_safetensors_load(tpath("num.safetensors")), "entry 'x' is not an object");
    CHECK(write_st(tpath("num.safetensors"), "{\"x\":1.}", 0));
    CHECK_ERR(bk_safetensors_load(tpath("num.safetensors")), "invalid number");
}

TEST(null_arguments) {
    CHECK_ERR(bk_safetensors_name(NULL, 0), "file is NULL");
    CHECK_ERR(bk_safetensors_meta(NULL, "k"), "file is NULL");
    CHECK(write_st(tpath("empty.safetensors"), "{}", 0));
    bk_safetensors *st = bk_safetensors_load(tpath("empty.safetensors"));
    CHECK(st != NULL);
    CHECK_ERR(bk_safetensors_meta(st, NULL), "key is NULL");
    bk_safetensors_free(st);

    bk_tensor *t = bk_tensor_new(BK_SHAPE(2));
    const char *names[1] = {"t"};
    const bk_tensor *ts[1] = {t};
    CHECK_FAILS_INT(bk_safetensors_save(tpath("s.safetensors"), 1, names, ts, 1, NULL, NULL),
                    "metadata keys or values is NULL");
    bk_tensor dead = *t; /* a copy whose magic says it was released */
    dead.magic = 0;
    const bk_tensor *ds[1] = {&dead};
    CHECK_FAILS_INT(bk_safetensors_save(tpath("s.safetensors"), 1, names, ds, 0, NULL, NULL),
                    "tensor 't' (#0) is not a live tensor");
    CHECK(access(tpath("s.safetensors"), F_OK) != 0);
    bk_tensor_free(t);
}

TEST(checkpoint_refuses_names_clashing_with_optim_prefix) {
    bk_module *m = bk_nn_sequential(1, bk_nn_identity());
    CHECK(m && bk_module_add(m, "optim", bk_nn_linear(2, 2)) != NULL);
    if (!m) return;
    CHECK_FAILS_INT(bk_checkpoint_save(tpath("c.safetensors"), m, NULL, 0, NULL, NULL),
                    "the model's state name \"optim.weight\" clashes with the optimizer prefix");
    CHECK(access(tpath("c.safetensors"), F_OK) != 0);
    bk_module_free(m);
}

int main(void) {
    if (!files_init("test-readers", NULL)) return 1;
    RUN(every_json_escape_decodes);
    RUN(literals_and_bad_numbers);
    RUN(null_arguments);
    RUN(checkpoint_refuses_names_clashing_with_optim_prefix);
    files_cleanup();
    return test_summary("test_reader_edges");
}
