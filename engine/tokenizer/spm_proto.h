// Builds a serialized SentencePiece ModelProto from a GGUF vocabulary, so libsentencepiece can load it with
// LoadFromSerializedProto without a tokenizer.model file and without libprotobuf headers. Only the proto2 wire format
// is needed (varints, fixed32 floats, length-delimited strings and messages); field numbers follow the public
// sentencepiece_model.proto.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace fkv {

// SentencePiece.Type; GGUF's tokenizer.ggml.token_type uses the same numbers (0, "undefined", is read as Normal).
enum class TokenType : int32_t { Normal = 1, Unknown = 2, Control = 3, UserDefined = 4, Unused = 5, Byte = 6 };

struct SpmPiece {
  std::string_view piece;  // must be non-empty and unique within the model
  float score = 0.f;
  TokenType type = TokenType::Normal;
};

struct SpmModelSpec {
  std::vector<SpmPiece> pieces;  // (n_vocab) in id order
  bool byte_fallback = false;    // only when all 256 <0xHH> pieces are present (libsentencepiece checks)
  int32_t unk_id = 0;            // the one piece of type Unknown
  int32_t bos_id = -1;           // -1: absent
  int32_t eos_id = -1;
  int32_t pad_id = -1;
  bool add_dummy_prefix = false;
};

// Proto2 wire-format writer: just enough for the ModelProto.
class ProtoWriter {
 public:
  void varint(uint32_t field, uint64_t v);
  void int32(uint32_t field, int32_t v);  // negative values as 10-byte two's complement varints, as proto2 does
  void boolean(uint32_t field, bool v) { varint(field, v ? 1 : 0); }
  void f32(uint32_t field, float v);
  void bytes(uint32_t field, std::string_view v);  // strings and embedded messages
  const std::string& data() const { return out_; }
  std::string take() { return std::move(out_); }

 private:
  void raw_varint(uint64_t v);
  void tag(uint32_t field, uint32_t wire_type);
  std::string out_;
};

std::string build_spm_model_proto(const SpmModelSpec& spec);

}  // namespace fkv
