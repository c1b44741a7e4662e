/*
 * embed.c: embeddings and the model list from C.
 *
 *   embed [text...]     (default: three texts, the first and the last equal)
 *
 * Lists the server's models (modelapi_models), then asks for the
 * embeddings of the texts in one call (modelapi_embed) and reads the
 * vectors as float arrays: their count and dimension, each vector's length,
 * and the cosine similarity of the first text with each other one (equal
 * texts: 1.0000).
 *
 * Talks to MODEL_API_URL / MODEL_NAME (MODEL_API_KEY if needed; the model
 * must serve embeddings); without MODEL_API_URL, a canned reply answers the
 * embeddings call with 8 floats per text, derived from the text alone, and
 * no model is listed (the list always asks a server).
 * stdout:
 *   model: <id>                      (one line per model, with a server)
 *   vectors: <count> x <dimension>
 *   text <i>: norm <n>, cosine with text 0: <c>
 * stderr: errors, as
 *   error: <STATUS_NAME> (<number>): <message>
 *   http status: <n>                (for MODELAPI_HTTP_ERROR only)
 * Exit status: 0 on success, 1 on failure.
 */

#define _POSIX_C_SOURCE 200809L

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "common.h"

static const char *const DEFAULT_TEXTS[] = {
    "The cat sat on the mat.",
    "A dog barked at the moon.",
    "The cat sat on the mat.",
};

static double dot(const float *a, const float *b, size_t n)
{
    double sum = 0;
    size_t i;

    for (i = 0; i < n; i++) {
        sum += (double)a[i] * (double)b[i];
    }
    return sum;
}

static int list_models(ModelApi *api)
{
    ModelApiModels *models = NULL;
    ModelApiStatus status = modelapi_models(api, &models);
    size_t i;

    if (status != MODELAPI_OK) {
        print_error(status);
        return 0;
    }
    for (i = 0; i < modelapi_models_count(models); i++) {
        printf("model: %s\n", modelapi_models_id(models, i));
    }
    modelapi_models_free(models);
    return 1;
}

int main(int argc, char **argv)
{
    const char *const *texts = argc > 1 ? (const char *const *)(argv + 1) : DEFAULT_TEXTS;
    size_t count = argc > 1 ? (size_t)(argc - 1) : sizeof DEFAULT_TEXTS / sizeof DEFAULT_TEXTS[0];
    const char *url = getenv("MODEL_API_URL");
    ModelApiEmbeddings *embeddings = NULL;
    ModelApiStatus status;
    ModelApi *api;
    size_t dimension;
    size_t i;
    int ok = 1;

    api = example_client("[\"(canned embeddings)\"]");
    if (api == NULL) {
        return 1;
    }
    if (url != NULL && url[0] != '\0') {
        ok = list_models(api);
    }
    /* NULL model: the client's. */
    status = ok ? modelapi_embed(api, NULL, texts, count, &embeddings) : MODELAPI_OK;
    if (ok && status != MODELAPI_OK) {
        print_error(status);
        ok = 0;
    }
    if (ok) {
        const float *first = modelapi_embeddings_vector(embeddings, 0);

        dimension = modelapi_embeddings_dimension(embeddings);
        printf("vectors: %lu x %lu\n", (unsigned long)modelapi_embeddings_count(embeddings),
               (unsigned long)dimension);
        for (i = 0; i < modelapi_embeddings_count(embeddings); i++) {
            /* The floats belong to embeddings, until it is freed. */
            const float *v = modelapi_embeddings_vector(embeddings, i);
            double cosine = dot(first, v, dimension) /
                            sqrt(dot(first, first, dimension) * dot(v, v, dimension));

            printf("text %lu: norm %.4f, cosine with text 0: %.4f\n", (unsigned long)i,
                   sqrt(dot(v, v, dimension)), cosine);
        }
    }
    modelapi_embeddings_free(embeddings);
    modelapi_close(api);
    return ok ? 0 : 1;
}
