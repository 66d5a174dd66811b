/* brick/data.h - part of brick.h: data sets, loaders and models by name.
 * Include <brick.h>, which includes every part in order and states the ownership and
 * error rules once at its top. */
#ifndef BRICK_PART_DATA_H
#define BRICK_PART_DATA_H

#ifndef BRICK_H
#error "include <brick.h>, not <brick/data.h>"
#endif

/* ------------------------------------------------------------------------------------ */
/* Data                                                                                 */
/* ------------------------------------------------------------------------------------ */

/* An in-memory labelled data set: n samples of shape `shape` (ndim dims), float32, and
 * integer labels in [0, n_classes) (or n_classes = 0 and no labels for regression
 * targets in `targets`, each of target_dim floats). */
typedef struct bk_dataset {
    int64_t n;
    int ndim;
    int64_t shape[BK_MAX_DIMS - 1];
    int64_t sample_numel;
    float *x;       /* n * sample_numel */
    int64_t *y;     /* n labels, or NULL */
    float *targets; /* n * target_dim regression targets, or NULL */
    int64_t target_dim;
    int n_classes;
    const char *const *class_names; /* n_classes names or NULL: static strings, or in `owned` */
    void *owned; /* one block the data set owns besides its arrays (names read from files) */
} bk_dataset;

/* Reads an IDX images file (magic 0x00000803, u8) and labels file (0x00000801, u8), plain
 * or gzip-compressed (detected from the content), validating every header field against
 * the file size. Pixels are scaled to [0, 1]; samples have shape (1, rows, cols). Labels
 * must be < n_classes (1..256). Free with bk_dataset_free. NULL with an error
 * "idx: <path>: <problem>" on a bad or inconsistent file. */
bk_dataset *bk_idx_load(const char *images_path, const char *labels_path, int n_classes);
/* The standard (Fashion-)MNIST file names in dir (each optionally .gz, plain preferred);
 * train: train-*, else t10k-*; labels 0..9 (n_classes 10). Class names: from
 * dir/classes.txt when it exists (one per line, at most 256 of 1..255 bytes; n_classes is
 * their count, every label must be below it), else Fashion-MNIST's ("T-shirt/top", ...)
 * when the labels begin as Fashion-MNIST's files do (its first 16 labels of that split;
 * the same files of MNIST digits begin otherwise), else none (NULL: classes by index). A
 * missing directory or file gives an error listing what was looked for. */
bk_dataset *bk_fashion_mnist_load(const char *dir, bool train);
/* CIFAR-10's binary version in dir: the training split is data_batch_1.bin ..
 * data_batch_5.bin (all five), the test split test_batch.bin; each file is records of 3073
 * bytes, a label 0..9 then 3 x 32 x 32 pixel bytes (channels, rows, columns). Samples (3,
 * 32, 32) scaled to [0, 1]. Class names: batches.meta.txt (ten non-empty lines) when dir
 * holds it, else CIFAR-10's own. NULL with "cifar10: <path>: <problem>" for a missing file,
 * a size that is not a whole number of records, a label over 9 or a bad names file. */
bk_dataset *bk_cifar10_load(const char *dir, bool train);
/* The most classes bk_image_folder_load accepts. */
#define BK_IMAGE_FOLDER_MAX_CLASSES 4096
/* An image folder as torchvision's ImageFolder reads one: dir holds one sub-directory per
 * class (hidden ones skipped), each holding PNG, JPEG or PGM files (.png, .jpg, .jpeg,
 * .pgm, any case; other files skipped; not recursive), read by bk_image_load. Classes are
 * the folder names in byte order, labels their indices; files are read in byte order.
 * classes (n_classes names, borrowed) fixes the classes instead, as the training split's do
 * for its test split: each folder must then name one of them (not every class needs a
 * folder). channels 0: 3 if the first image is colour, else 1; height and width 0: the
 * first image's size. Samples (channels, height, width) in [0, 1]. NULL with an error
 * naming the folder or file: no class folders, an empty one, an undecodable image, a
 * folder not in classes, more than BK_IMAGE_FOLDER_MAX_CLASSES classes. */
bk_dataset *bk_image_folder_load(const char *dir, const char *const *classes, int n_classes, int channels,
                                 int64_t height, int64_t width);
/* CSV tables (docs/data.md): what the target column is for. AUTO: classification when
 * every target value (of both files) is an integer, else regression. */
typedef enum bk_csv_task {
    BK_CSV_TASK_AUTO,
    BK_CSV_TASK_CLASSIFICATION,
    BK_CSV_TASK_REGRESSION,
    BK_CSV_TASK_COUNT
} bk_csv_task;
/* The most classes bk_csv_load makes (distinct target values of the training file). */
#define BK_CSV_MAX_CLASSES 256
/* Reads a training and a test CSV file: a header row of column names (the test file's must
 * be the training file's), then rows of finite numbers, comma-separated (LF or CRLF; a
 * cell may be double-quoted). The column named `target` (NULL: the last column) is the
 * target, the others the features: samples of shape (n_features). Classification: labels
 * are indices into the sorted distinct target values of the training file, which are also
 * the class names ("0", "7", "-1"; owned by the data set); a test value outside them is an
 * error. Regression: targets (n, 1). Features are left as read (bk_dataset_feature_stats,
 * bk_dataset_standardize). 0 with *train and *test set (free each with bk_dataset_free),
 * or -1 with both NULL and an error "csv: <path>: line L, column C (<name>): <problem>"
 * for a ragged row, an empty, non-numeric, NaN or infinite cell, an empty file, a header
 * alone, a missing target column, non-integer classes, more than BK_CSV_MAX_CLASSES. */
int bk_csv_load(const char *train_path, const char *test_path, const char *target, bk_csv_task task,
                bk_dataset **train, bk_dataset **test);
/* Per-feature statistics over the samples of ds (each of its sample_numel values is a
 * feature): mean[j] and the population standard deviation std[j] (divided by n, as
 * sklearn's StandardScaler), computed in double; a constant feature gets std 1 (so that
 * standardising leaves it at 0). mean and std hold sample_numel floats each. -1 with an
 * error for an empty or malformed data set or a NULL array. */
int bk_dataset_feature_stats(const bk_dataset *ds, float *mean, float *std);
/* In place: x[i][j] = (x[i][j] - mean[j]) / std[j] for every feature j (std[j] finite and
 * > 0, mean[j] finite; else -1 with an error naming j, and ds unchanged). */
int bk_dataset_standardize(bk_dataset *ds, const float *mean, const float *std);
/* Copies user arrays into a data set (y or targets may be NULL; n_classes must be 0
 * without y and target_dim 0 without targets). Labels are checked to be in range. */
bk_dataset *bk_dataset_from_arrays(int64_t n, int ndim, const int64_t *shape, const float *x,
                                   const int64_t *y, int n_classes, const float *targets, int64_t target_dim);
/* Frees the data set and its arrays. NULL is fine. */
void bk_dataset_free(bk_dataset *ds);
/* In place: x = (x - mean) / std (std > 0). A data set filled in by hand must be
 * consistent (shape product = sample_numel, x for every sample, ...), here and for
 * bk_loader_new, else "malformed data set" is the error. */
int bk_dataset_normalize(bk_dataset *ds, float mean, float std);

/* Per-channel statistics of samples (C, ...): mean[c] and std[c] (population: the root of
 * the mean squared deviation, as numpy's std) over every sample and position of channel c,
 * summed in double. mean and std hold shape[0] floats. 0, or -1 with an error (a data set of
 * rank 0 or with no samples). */
int bk_dataset_channel_stats(const bk_dataset *ds, float *mean, float *std);
/* In place, as torchvision's Normalize(mean, std): x[c] = (x[c] - mean[c]) / std[c] for
 * each channel c of samples (C, ...); mean and std hold C = shape[0] values, finite, std > 0. */
int bk_dataset_normalize_channels(bk_dataset *ds, const float *mean, const float *std);

/* Mini-batches over a data set, reshuffled each epoch from its own generator (seeded with
 * `seed`: the same seed gives the same orders). Borrows ds, which must outlive the loader.
 * Allocates everything up front; a batch allocates only its arena tensors. */
typedef struct bk_loader bk_loader;
bk_loader *bk_loader_new(const bk_dataset *ds, int64_t batch_size, bool shuffle, uint64_t seed,
                         bool drop_last);
void bk_loader_free(bk_loader *l);
/* Starts an epoch: the order restarts from 0..n-1 and is shuffled if asked, so it depends
 * only on the generator state at this call. bk_loader_next on a loader never started
 * starts the first epoch itself. */
void bk_loader_start(bk_loader *l);
/* The next batch: *x an arena tensor (B, shape...), *y borrowed labels (valid until the
 * next call), *targets borrowed regression targets; returns the batch size, 0 at the end
 * of the epoch, -1 on error. Any of the out pointers may be NULL. */
int64_t bk_loader_next(bk_loader *l, bk_tensor **x, const int64_t **y, bk_tensor **targets);
/* Batches per epoch: ceil(n / batch_size), or floor with drop_last. */
int64_t bk_loader_num_batches(const bk_loader *l);
/* Random augmentation of every batch the loader yields, as torchvision's
 * RandomCrop((H, W), padding=crop_padding, fill) then RandomHorizontalFlip(0.5): each sample
 * (C, H, W) is padded by crop_padding pixels on every side with fill[c] (C values, copied;
 * NULL: zeros), an H x W window at a uniform random offset is kept, and it is flipped left to
 * right with probability 1/2 when hflip. The draws come from the loader's generator, after
 * the epoch's shuffle, and are made for every sample bk_loader_next passes over (x NULL
 * included), so the same seed gives the same bytes and a resume replays them. crop_padding
 * 0 and hflip false: off (the default). 0, or -1 with an error (samples not of rank 3,
 * crop_padding outside 0..65536, a fill that is not finite), the loader unchanged. */
int bk_loader_set_augment(bk_loader *l, int64_t crop_padding, bool hflip, const float *fill);
/* The generator state, for resuming with the same shuffles: save it before an epoch's
 * bk_loader_start; a loader given it by bk_loader_set_rng then starts the same epochs.
 * (For a NULL loader: an error, and bk_loader_rng gives a zero state.) */
bk_rng bk_loader_rng(const bk_loader *l);
/* 0, or -1 with an error and the loader unchanged for a state bk_rng_set_state refuses (an
 * even increment). */
int bk_loader_set_rng(bk_loader *l, bk_rng rng);

/* ------------------------------------------------------------------------------------ */
/* Models by name (what the CLI trains and what checkpoints record)                     */
/* ------------------------------------------------------------------------------------ */

/* Builds a model from a spec "name" or "name:key=value,key=value" (e.g. "mlp",
 * "mlp:hidden=512,act=gelu,dropout=0.1", "softmax:bias=false"; a setting is an integer, a
 * number, true/false or a word from a list: docs/cli.md "Models"), for inputs of shape
 * in_shape (e.g. (1, 28, 28)) and n_classes outputs. The canonical spec, which builds the
 * same model, is written to *canonical (may be NULL) so that it can be stored in a
 * checkpoint. A bad value: NULL with an error naming the spec, the setting and the value. */
bk_module *bk_model_build(const char *spec, int in_ndim, const int64_t *in_shape, int n_classes,
                          char *canonical, size_t canonical_size);
/* The most parameters a model of the zoo may have: 2^30, 4 GiB of float32 weights (with
 * gradients and Adam's two moments, 16 GiB to train). bk_model_build and
 * bk_model_num_params refuse a spec beyond it before allocating anything. */
#define BK_MODEL_MAX_PARAMS (INT64_C(1) << 30)
/* The number of parameters bk_model_build(spec, ...) would allocate, computed from the
 * spec alone (nothing is allocated), after the same checks (the spec, the input shape, the
 * classes, BK_MODEL_MAX_PARAMS); the canonical spec goes to *canonical as there. -1 with
 * an error if bk_model_build would refuse the spec. */
int64_t bk_model_num_params(const char *spec, int in_ndim, const int64_t *in_shape, int n_classes,
                            char *canonical, size_t canonical_size);
/* Names of the models bk_model_build knows, NULL-terminated. */
const char *const *bk_model_names(void);
/* What model `name` (a name of bk_model_names, no settings) builds: a static sentence
 * such as "multilayer perceptron: Flatten, Linear(in, hidden), ...", and its number of
 * settings in *n_settings (may be NULL). NULL with an error for a NULL or unknown name
 * (the error lists the known names, as bk_model_build's does). */
const char *bk_model_describe(const char *name, int *n_settings);
/* One setting of a model, in the order a canonical spec names them. Its texts are what a
 * spec writes: "key=def" builds the model at its default. */
typedef struct bk_model_setting {
    const char *key;  /* "hidden" (static) */
    const char *type; /* "integer", "number", "boolean" or "word" (static) */
    char def[32];     /* the default: "256", "0", "true", "relu" */
    char values[96];  /* what it accepts: "1..4294967296" or "0..1" (integers and numbers,
                       * bounds included), "true|false", "relu|sigmoid|tanh|gelu" (words) */
} bk_model_setting;
/* Setting i (0 <= i < n_settings of bk_model_describe) of model `name` into *out. 0, or -1
 * with an error (a NULL name or out, an unknown model, i out of range), *out untouched. */
int bk_model_setting_info(const char *name, int i, bk_model_setting *out);

#endif /* BRICK_PART_DATA_H */
