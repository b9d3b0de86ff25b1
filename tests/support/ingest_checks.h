// Shared by the ingestion suites (test_ingest, test_ingest_pdf).
#pragma once

#include <QTest>

#include <string>

// Declares `doc` (a const fkv::IngestedDocument&) from an ingestion that must succeed.
#define INGEST_OK(doc, expr)                                   \
  auto doc##_result = (expr);                                  \
  QVERIFY2(doc##_result.ok(), doc##_result.message().c_str()); \
  const fkv::IngestedDocument& doc = *doc##_result  // NOLINT(bugprone-macro-parentheses): declares `doc`

// Checks that an ingestion fails and that its message holds `needle`.
#define INGEST_FAILS(expr, needle)                                                                                 \
  do {                                                                                                             \
    const auto r_ = (expr);                                                                                        \
    QVERIFY2(!r_.ok(), "expected an error");                                                                       \
    QVERIFY2(r_.message().find(needle) != std::string::npos, (r_.message() + " / expected: " + (needle)).c_str()); \
  } while (0)
