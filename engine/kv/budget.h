// The token budget a decode step attends to under a retrieval policy: sink tokens at the start, a recent window at the
// end, and retrieved pages in between (FreeKV defaults 512 + 512 + 1024 tokens in pages of 32).
#pragma once

#include "fkv/status.h"

namespace fkv {

struct Budget {
  int sink_tokens = 512;
  int recent_tokens = 512;
  int retrieved_tokens = 1024;
  int page_size = 32;

  int sink_pages() const { return sink_tokens / page_size; }
  int recent_pages() const { return recent_tokens / page_size; }
  int retrieved_pages() const { return retrieved_tokens / page_size; }
  int total_tokens() const { return sink_tokens + recent_tokens + retrieved_tokens; }
  // Every count a multiple of the page size in 0..2^24, and a recent window of at least one page.
  Status validate() const;
};

}  // namespace fkv
