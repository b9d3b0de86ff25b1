// Chat templates: the exact prompt text of each family, role checks, names, and detection from a GGUF's Jinja
// template, its vocabulary and its architecture; with Gemma installed, the prompt's tokens.
#include <QtTest>

#include <memory>
#include <string>
#include <vector>

#include "core/gguf.h"
#include "model/gguf_writer.h"
#include "support/test_paths.h"
#include "tokenizer/chat_template.h"
#include "tokenizer/tokenizer.h"

using fkv::ChatMessage;
using fkv::ChatTemplate;
using fkv::GgufFile;
using fkv::GgufWriter;

namespace {

const std::vector<ChatMessage> kConversation = {
    {"system", "You are terse."},
    {"user", " Hi there \n"},
    {"assistant", "Hello."},
    {"user", "What is 2+2?"},
};

std::string apply(ChatTemplate t, const std::vector<ChatMessage>& m, bool gen) {
  auto r = fkv::apply_chat_template(t, m, gen);
  return r.ok() ? *r : "ERROR: " + r.message();
}

QString apply_error(ChatTemplate t, const std::vector<ChatMessage>& m) {
  auto r = fkv::apply_chat_template(t, m, true);
  return r.ok() ? QString() : QString::fromStdString(r.message());
}

// Detection on a GGUF holding only the given metadata.
fkv::Result<ChatTemplate> detect(const GgufWriter& w) {
  const std::vector<uint8_t> bytes = w.to_bytes();
  auto file = GgufFile::parse(bytes.data(), bytes.size(), "meta.gguf");
  if (!file.ok()) return file.status();
  return fkv::detect_chat_template(**file);
}

GgufWriter with_template(const std::string& jinja) {
  GgufWriter w;
  w.set_string("general.architecture", "llama");
  w.set_string("tokenizer.chat_template", jinja);
  return w;
}

}  // namespace

class TestChatTemplate : public QObject {
  Q_OBJECT

 private slots:
  void gemmaFoldsTheSystemPromptIntoTheFirstUserTurn() {
    QCOMPARE(apply(ChatTemplate::Gemma, kConversation, true),
             std::string("<start_of_turn>user\nYou are terse.\n\nHi there<end_of_turn>\n"
                         "<start_of_turn>model\nHello.<end_of_turn>\n"
                         "<start_of_turn>user\nWhat is 2+2?<end_of_turn>\n"
                         "<start_of_turn>model\n"));
    QCOMPARE(apply(ChatTemplate::Gemma, {{"user", "Hello"}}, false),
             std::string("<start_of_turn>user\nHello<end_of_turn>\n"));
  }

  void llama2() {
    QCOMPARE(apply(ChatTemplate::Llama2, kConversation, true),
             std::string("[INST] <<SYS>>\nYou are terse.\n<</SYS>>\n\nHi there [/INST] Hello. </s>"
                         "<s>[INST] What is 2+2? [/INST]"));
    QCOMPARE(apply(ChatTemplate::Llama2, {{"user", "Hello"}}, true), std::string("[INST] Hello [/INST]"));
  }

  void llama3() {
    QCOMPARE(apply(ChatTemplate::Llama3, kConversation, true),
             std::string("<|start_header_id|>system<|end_header_id|>\n\nYou are terse.<|eot_id|>"
                         "<|start_header_id|>user<|end_header_id|>\n\nHi there<|eot_id|>"
                         "<|start_header_id|>assistant<|end_header_id|>\n\nHello.<|eot_id|>"
                         "<|start_header_id|>user<|end_header_id|>\n\nWhat is 2+2?<|eot_id|>"
                         "<|start_header_id|>assistant<|end_header_id|>\n\n"));
    QCOMPARE(apply(ChatTemplate::Llama3, {{"user", "x"}}, false),
             std::string("<|start_header_id|>user<|end_header_id|>\n\nx<|eot_id|>"));
  }

  void chatml() {
    QCOMPARE(apply(ChatTemplate::ChatML, kConversation, true),
             std::string("<|im_start|>system\nYou are terse.<|im_end|>\n"
                         "<|im_start|>user\n Hi there \n<|im_end|>\n"
                         "<|im_start|>assistant\nHello.<|im_end|>\n"
                         "<|im_start|>user\nWhat is 2+2?<|im_end|>\n"
                         "<|im_start|>assistant\n"));
    // ChatML has real system turns, so a system message may come anywhere.
    QCOMPARE(apply(ChatTemplate::ChatML, {{"user", "a"}, {"system", "b"}}, false),
             std::string("<|im_start|>user\na<|im_end|>\n<|im_start|>system\nb<|im_end|>\n"));
  }

  // Llama 3.0's template: a system message is a header turn like any other, its text trimmed.
  void llama3SystemPrompt() {
    QCOMPARE(apply(ChatTemplate::Llama3, {{"system", "  Be brief.\n"}, {"user", "Hi"}}, true),
             std::string("<|start_header_id|>system<|end_header_id|>\n\nBe brief.<|eot_id|>"
                         "<|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>"
                         "<|start_header_id|>assistant<|end_header_id|>\n\n"));
  }

  // Qwen's templates render a given system message untouched; no default one is invented when none is given.
  void chatmlSystemPrompt() {
    QCOMPARE(apply(ChatTemplate::ChatML, {{"system", "  Be brief.\n"}, {"user", "Hi"}}, true),
             std::string("<|im_start|>system\n  Be brief.\n<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n"
                         "<|im_start|>assistant\n"));
    QCOMPARE(apply(ChatTemplate::ChatML, {{"user", "Hi"}}, true),
             std::string("<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"));
  }

  // As DeepSeek-R1-Distill's published template: the system text bare before the turns, untrimmed contents, every
  // answer closed by end-of-sentence, the generation prompt the assistant marker alone (no BOS: the tokenizer adds it).
  void deepseekR1() {
    QCOMPARE(apply(ChatTemplate::DeepSeekR1, kConversation, true),
             std::string("You are terse.<｜User｜> Hi there \n<｜Assistant｜>Hello.<｜end▁of▁sentence｜>"
                         "<｜User｜>What is 2+2?<｜Assistant｜>"));
    QCOMPARE(apply(ChatTemplate::DeepSeekR1, {{"user", "Hello"}}, true), std::string("<｜User｜>Hello<｜Assistant｜>"));
    QCOMPARE(apply(ChatTemplate::DeepSeekR1, {{"user", "Hello"}}, false), std::string("<｜User｜>Hello"));
  }

  // Earlier answers lose their reasoning: everything up to the last </think> goes, the rest stays as it is.
  void deepseekR1DropsEarlierReasoning() {
    const std::vector<ChatMessage> m = {{"user", "2+2?"},
                                        {"assistant", "<think>\nadd </think> twice? no\n</think>\n\n4"},
                                        {"user", "3+3?"},
                                        {"assistant", "<think>unfinished, no end tag"}};
    QCOMPARE(apply(ChatTemplate::DeepSeekR1, m, false),
             std::string("<｜User｜>2+2?<｜Assistant｜>\n\n4<｜end▁of▁sentence｜>"
                         "<｜User｜>3+3?<｜Assistant｜><think>unfinished, no end tag<｜end▁of▁sentence｜>"));
  }

  // The template keeps only the last system message, and puts it before every turn wherever it stood.
  void deepseekR1KeepsTheLastSystemMessage() {
    const std::vector<ChatMessage> m = {{"system", "one"}, {"user", "a"}, {"assistant", "b"}, {"system", "two"}};
    QCOMPARE(apply(ChatTemplate::DeepSeekR1, m, true),
             std::string("two<｜User｜>a<｜Assistant｜>b<｜end▁of▁sentence｜><｜Assistant｜>"));
  }

  void mistral() {
    QCOMPARE(apply(ChatTemplate::Mistral, kConversation, true),
             std::string("[INST] You are terse.\n\n Hi there \n [/INST] Hello.</s>[INST] What is 2+2? [/INST]"));
  }

  void rolesAreChecked() {
    for (const ChatTemplate t : {ChatTemplate::Llama2, ChatTemplate::Llama3, ChatTemplate::Mistral,
                                 ChatTemplate::ChatML, ChatTemplate::Gemma, ChatTemplate::DeepSeekR1}) {
      QVERIFY(apply_error(t, {{"user", "a"}, {"tool", "b"}})
                  .contains("message 1 has role 'tool', expected system, user or assistant"));
      QVERIFY(apply_error(t, {}).contains("no messages"));
    }
    for (const ChatTemplate t : {ChatTemplate::Llama2, ChatTemplate::Mistral, ChatTemplate::Gemma}) {
      QVERIFY(
          apply_error(t, {{"user", "a"}, {"user", "b"}}).contains("message 1 has role 'user', expected 'assistant'"));
      QVERIFY(apply_error(t, {{"assistant", "a"}}).contains("message 0 has role 'assistant', expected 'user'"));
      QVERIFY(apply_error(t, {{"user", "a"}, {"assistant", "b"}, {"system", "c"}})
                  .contains("message 2 has role 'system', expected 'user'"));
      QVERIFY(apply_error(t, {{"system", "a"}}).contains("must be followed by a user message"));
    }
  }

  void names() {
    for (const ChatTemplate t : {ChatTemplate::Llama2, ChatTemplate::Llama3, ChatTemplate::Mistral,
                                 ChatTemplate::ChatML, ChatTemplate::Gemma, ChatTemplate::DeepSeekR1}) {
      auto back = fkv::chat_template_from_name(fkv::chat_template_name(t));
      QVERIFY(back.ok());
      QCOMPARE(*back, t);
    }
    QCOMPARE(*fkv::chat_template_from_name("ChatML"), ChatTemplate::ChatML);
    QCOMPARE(*fkv::chat_template_from_name("DeepSeek-R1"), ChatTemplate::DeepSeekR1);
    QCOMPARE(fkv::chat_template_name(ChatTemplate::DeepSeekR1), "deepseek-r1");
    auto bad = fkv::chat_template_from_name("vicuna");
    QVERIFY(!bad.ok());
    QVERIFY(QString::fromStdString(bad.message())
                .contains("unknown chat template 'vicuna' (expected one of llama2, llama3, mistral, chatml, gemma, "
                          "deepseek-r1)"));
  }

  void detectFromJinja() {
    const std::pair<std::string, ChatTemplate> cases[] = {
        {"{{ bos_token }}{% for message in messages %}{{ '<start_of_turn>' + role + '\\n' }}{% endfor %}",
         ChatTemplate::Gemma},
        {"{% for m in messages %}{{ '<|start_header_id|>' + m['role'] + '<|end_header_id|>\\n\\n' }}{% endfor %}",
         ChatTemplate::Llama3},
        {"{% for m in messages %}{{'<|im_start|>' + m['role'] + '\\n' + m['content'] + '<|im_end|>\\n'}}{% endfor %}",
         ChatTemplate::ChatML},
        {"{% if system %}{{ '[INST] <<SYS>>\\n' + system + '\\n<</SYS>>\\n\\n' }}{% endif %}", ChatTemplate::Llama2},
        {"{{ bos_token }}{% for m in messages %}{{ '[INST] ' + m['content'] + ' [/INST]' }}{% endfor %}",
         ChatTemplate::Mistral},
        // An excerpt of DeepSeek-R1-Distill-Qwen-7B's template (its GGUF's tokenizer.chat_template).
        {"{{bos_token}}{{ns.system_prompt}}{%- for message in messages %}{%- if message['role'] == 'user' %}"
         "{%- set ns.is_tool = false -%}{{'<｜User｜>' + message['content']}}{%- endif %}{% set content = "
         "message['content'] %}{% if '</think>' in content %}{% set content = content.split('</think>')[-1] %}"
         "{% endif %}{{'<｜Assistant｜>' + content + '<｜end▁of▁sentence｜>'}}{%- endfor -%}"
         "{% if add_generation_prompt and not ns.is_tool %}{{'<｜Assistant｜>'}}{% endif %}",
         ChatTemplate::DeepSeekR1},
    };
    for (const auto& [jinja, expected] : cases) {
      auto t = detect(with_template(jinja));
      QVERIFY2(t.ok(), t.message().c_str());
      QCOMPARE(*t, expected);
    }
  }

  void detectFallsBackToVocabularyThenArchitecture() {
    // An unrecognised template does not stop the fallbacks.
    GgufWriter vocab = with_template("{{ messages }}");
    vocab.set_string_array("tokenizer.ggml.tokens", {"<pad>", "<|im_start|>", "<|im_end|>"});
    QCOMPARE(*detect(vocab), ChatTemplate::ChatML);

    // R1-Distill-Qwen is a qwen2 model: its marker tokens, not its architecture, tell its template.
    GgufWriter r1 = with_template("{{ messages }}");
    r1.set_string("general.architecture", "qwen2");
    r1.set_string_array("tokenizer.ggml.tokens", {"<｜end▁of▁sentence｜>", "<｜User｜>", "<｜Assistant｜>"});
    QCOMPARE(*detect(r1), ChatTemplate::DeepSeekR1);

    GgufWriter gemma;
    gemma.set_string("general.architecture", "gemma3");
    QCOMPARE(*detect(gemma), ChatTemplate::Gemma);
    GgufWriter qwen;
    qwen.set_string("general.architecture", "qwen2");
    QCOMPARE(*detect(qwen), ChatTemplate::ChatML);

    auto llama_vocab = GgufFile::open(fkvtest::llamaVocabPath().toStdString());
    QVERIFY2(llama_vocab.ok(), llama_vocab.message().c_str());
    QCOMPARE(*fkv::detect_chat_template(**llama_vocab), ChatTemplate::Llama2);

    GgufWriter unknown;
    unknown.set_string("general.architecture", "bert");
    auto none = detect(unknown);
    QVERIFY(!none.ok());
    QVERIFY2(QString::fromStdString(none.message())
                 .contains("cannot tell the chat template of this model; pass --template NAME (one of llama2, "
                           "llama3, mistral, chatml, gemma, deepseek-r1)"),
             none.message().c_str());

    GgufWriter wrong_type;
    wrong_type.set_u32("tokenizer.chat_template", 7);
    QVERIFY(!detect(wrong_type).ok());  // a template key that is not a string is reported, not ignored
  }

  void gemmaPromptTokens() {
    const QString path = fkvtest::gemmaModelPath();
    if (path.isEmpty()) QSKIP("Gemma 3 270M GGUF not installed (run the setup script or set FKV_GEMMA_MODEL)");
    auto file = GgufFile::open(path.toStdString());
    QVERIFY2(file.ok(), file.message().c_str());
    QCOMPARE(*fkv::detect_chat_template(**file), ChatTemplate::Gemma);
    auto tok = fkv::Tokenizer::from_gguf(**file);
    QVERIFY2(tok.ok(), tok.message().c_str());
    const std::string prompt = apply(ChatTemplate::Gemma, {{"user", "Hello"}}, true);
    const std::vector<int32_t> ids = *(*tok)->encode(prompt, true, true);
    // <bos> <start_of_turn> user \n Hello <end_of_turn> \n <start_of_turn> model \n
    const std::vector<int32_t> expected = {2, 105, 2364, 107, 9259, 106, 107, 105, 4368, 107};
    QCOMPARE(ids, expected);
  }
};

QTEST_APPLESS_MAIN(TestChatTemplate)
#include "test_chat_template.moc"
