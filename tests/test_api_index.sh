#!/usr/bin/env bash
# test_api_index.sh - docs/api-index.md lists every op and layer: each bk_* function that
# include/brick/ops.h declares and each bk_nn_* constructor of include/brick/nn.h appears
# in it (as `bk_name`), so the index of ops and layers with their PyTorch equivalents
# stays complete. A new op or layer adds its row there.
set -u
source "$(dirname "$0")/lib.sh"
bk_setup --no-brick
index=docs/api-index.md
check "$index exists" "[ -f $index ]"
missing=""
for f in $(grep -ohE '^(bk_tensor|bk_module|int) \*?bk_[a-z0-9_]+\(' include/brick/ops.h include/brick/nn.h |
    sed -E 's/.*(bk_[a-z0-9_]+)\(/\1/' | grep -Ev '^bk_module_|^bk_forward$|^bk_nn_sequential_(append|len|get)$'); do
    grep -q "\`$f[\`(]" "$index" || missing="$missing $f"
done
if [ -z "$missing" ]; then
    ok "every op of ops.h and every bk_nn_* layer has a row in $index"
else
    bad "functions without a row in $index:$missing" "add each to its table, next to its PyTorch equivalent"
fi
check "README links the index" "grep -q 'docs/api-index.md' README.md"
bk_done
