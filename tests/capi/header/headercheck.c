/* cdp.h compiles alone as C11 with -Wall -Wextra -pedantic -Werror, and twice over. */
#include "cdp.h"
#include "cdp.h" /* the include guard holds */
