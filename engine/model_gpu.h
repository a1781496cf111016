/*
 * model_gpu.h — the GPU part of a model (model_gpu.c): attach after loading, then the CPU
 * forward pass hands the last layers to it.  Without CUDA (or a device) attaching leaves the
 * model on the CPU and a note saying why.
 */
#ifndef KF_MODEL_GPU_H
#define KF_MODEL_GPU_H

#include <stddef.h>

struct model;

/* Put up to n_gpu_layers (< 0: all) of the last layers on the GPU; never fails for lack of one. */
int model_gpu_attach(struct model *m, int n_gpu_layers);
void model_gpu_detach(struct model *m);
const char *model_gpu_note(const struct model *m); /* "" when the GPU was not asked for */
int model_gpu_layers(const struct model *m);
size_t model_gpu_bytes(const struct model *m);
/* Layers gpu_layer0.. over m->x (n tokens from pos0); logits when the head is there, else m->x. */
int model_gpu_forward(struct model *m, int n, int pos0, float *logits, int all_logits);
/* Copy the GPU layers' cache entries into the CPU cache's storage (with_data: keys and values). */
void model_gpu_pull(struct model *m, int with_data);
/* Only the entry counts (cheap: one copy), for memory figures. */
void model_gpu_pull_counts(struct model *m);
/* And back, after a snapshot was loaded into the CPU cache. */
int model_gpu_push(struct model *m);
void model_gpu_truncate(struct model *m, int n_past);

#endif
