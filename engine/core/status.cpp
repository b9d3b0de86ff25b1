// Status is header-only; this unit keeps the fuzz build's source list stable and checks the header compiles alone.
#include "fkv/status.h"
