/* cdp.h compiles alone as C++ (11 and 20) with -Wall -Wextra -pedantic -Werror. */
#include "cdp.h"
#include "cdp.h" /* the include guard holds */
