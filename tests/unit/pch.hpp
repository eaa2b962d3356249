// The unit tests' precompiled header (tests/CMakeLists.txt): what nearly every test file
// includes, parsed once per build instead of once per file.
#pragma once

#include <doctest/doctest.h>

#include <algorithm>
#include <filesystem>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "cdp/engine.hpp"
#include "simdjson.h"
