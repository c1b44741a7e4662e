/* An outside program built against an installed modelapi only (see
   tests/install.rs): one completion, answered by a canned reply from
   DEBUG_MOCK_RESPONSES; prints the library's version and the answer. */
#include <stdio.h>

#include "modelapi.h"

int main(void)
{
    ModelApi *api = modelapi_new("installed", "http://localhost:8000", NULL);
    if (api == NULL) {
        fprintf(stderr, "modelapi_new: %s\n", modelapi_last_error());
        return 1;
    }
    ModelApiMessage message = {"user", "Are you installed?"};
    char *content = NULL;
    ModelApiStatus status = modelapi_complete(api, &message, 1, NULL, NULL, &content);
    if (status != MODELAPI_OK) {
        fprintf(stderr, "modelapi_complete: %d: %s\n", (int)status, modelapi_last_error());
        modelapi_close(api);
        return 1;
    }
    printf("%s %s %s\n", MODELAPI_VERSION, modelapi_version(), content);
    modelapi_string_free(content);
    modelapi_close(api);
    return 0;
}
