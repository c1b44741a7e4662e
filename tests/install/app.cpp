// An outside C++ program built against modelapi through CMake (see
// tests/install.rs): one completion through modelapi.hpp, answered by a
// canned reply from DEBUG_MOCK_RESPONSES; prints the version and the answer.
#include <iostream>

#include "modelapi.hpp"

int main()
{
    try {
        modelapi::Client client("installed", "http://localhost:8000");
        const auto answer = client.complete({{"user", "Are you installed?"}});
        std::cout << MODELAPI_VERSION << ' ' << modelapi_version() << ' ' << answer.content
                  << '\n';
        return 0;
    } catch (const std::exception &e) {
        std::cerr << "error: " << e.what() << '\n';
        return 1;
    }
}
