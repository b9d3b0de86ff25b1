// The docqa dataset: the documents (base-files' license texts) and the questions about them, each with the pattern
// its answer must match. Questions ask for short facts a reader finds in one place of the named document (a number,
// a date, a section title, a name); patterns accept the usual spellings of that fact ("60" or "sixty") and little
// else. Every pattern is checked against its document by the tests (test_docqa).
#include "eval/docqa.h"

namespace fkv {

namespace {

constexpr DocqaDocument kDocuments[] = {
    {"GPL-3", "GNU General Public License, version 3"},
    {"Apache-2.0", "Apache License, Version 2.0"},
    {"MPL-2.0", "Mozilla Public License, version 2.0"},
    {"GFDL-1.3", "GNU Free Documentation License, version 1.3"},
    {"LGPL-3", "GNU Lesser General Public License, version 3"},
    {"Artistic", "The Artistic License"},
    // Padding only: other licenses base-files ships.
    {"GPL-2", "GNU General Public License, version 2"},
    {"LGPL-2.1", "GNU Lesser General Public License, version 2.1"},
    {"MPL-1.1", "Mozilla Public License, version 1.1"},
    {"GFDL-1.2", "GNU Free Documentation License, version 1.2"},
    {"GPL-1", "GNU General Public License, version 1"},
    {"CC0-1.0", "Creative Commons CC0 1.0 Universal"},
    {"BSD", "BSD License"},
};

constexpr DocqaQuestion kQuestions[] = {
    // GPL-3, section 8 (Termination), section 6 (written offer), section titles and the header.
    {"GPL-3",
     "According to the GNU General Public License, version 3, once you stop violating it, your license is reinstated "
     "provisionally unless the copyright holder terminates it within how many days after the cessation?",
     R"(\b60\b|sixty)"},
    {"GPL-3",
     "According to the GNU General Public License, version 3, when a copyright holder notifies you of a violation for "
     "the first time, within how many days after receiving the notice must you cure it?",
     R"(\b30\b|thirty)"},
    {"GPL-3",
     "According to the GNU General Public License, version 3, for at least how many years must a written offer to "
     "provide the Corresponding Source remain valid?",
     // Not a bare "3": the question's own "version 3" would score an answer that repeats the question as right.
     R"(\b(3|three)[\s-]+years?\b|^\W*(3|three)\W*$)"},
    {"GPL-3",
     "In the GNU General Public License, version 3, what is the number of the section titled \"Use with the GNU Affero "
     "General Public License\"?",
     R"(\b13\b|thirteen)"},
    // A date is right only with its year: "June 29, 2007" is GPL-3's, "November 3, 2007" is not GFDL-1.3's.
    {"GPL-3", "On what date was the GNU General Public License, version 3 published?",
     R"((\b29(th)? (of )?June|June 29(th)?),? 2007)"},
    {"GPL-3",
     "In the GNU General Public License, version 3, what is the number of the section titled \"Disclaimer of "
     "Warranty\"?",
     R"(\b15\b|fifteen)"},
    // Apache-2.0.
    {"Apache-2.0", "In which month and year was the Apache License, Version 2.0 published?", R"(January,? 2004)"},
    {"Apache-2.0",
     "Under the Apache License, Version 2.0, if you institute patent litigation alleging that the Work infringes a "
     "patent, as of what date do the patent licenses granted to you for that Work terminate?",
     R"(filed|filing)"},
    {"Apache-2.0", "Under the Apache License, Version 2.0, what must you cause any modified files to carry?",
     R"(prominent notices?)"},
    {"Apache-2.0", "What is the title of section 6 of the Apache License, Version 2.0?", R"(trademark)"},
    {"Apache-2.0", "What is the title of section 9 of the Apache License, Version 2.0?", R"(accepting warranty)"},
    // MPL-2.0.
    {"MPL-2.0", "In the Mozilla Public License, version 2.0, which exhibit holds the Source Code Form License Notice?",
     R"(exhibit a\b)"},
    {"MPL-2.0",
     "In the Mozilla Public License, version 2.0, which exhibit holds the \"Incompatible With Secondary Licenses\" "
     "notice?",
     R"(exhibit b\b)"},
    {"MPL-2.0", "According to the Mozilla Public License, version 2.0, who is the license steward?",
     R"(mozilla foundation)"},
    {"MPL-2.0",
     "According to the Mozilla Public License, version 2.0, litigation relating to the license may be brought only in "
     "the courts of a jurisdiction where the defendant maintains what?",
     R"(principal place of business)"},
    {"MPL-2.0",
     "Which version of the GNU Lesser General Public License does the Mozilla Public License, version 2.0 list as a "
     "Secondary License?",
     R"(\b2\.1\b)"},
    // GFDL-1.3.
    {"GFDL-1.3",
     "According to the GNU Free Documentation License, version 1.3, at most how many words may a Back-Cover Text "
     "have?",
     R"(\b25\b|twenty-five)"},
    {"GFDL-1.3",
     "According to the GNU Free Documentation License, version 1.3, at most how many words may a Front-Cover Text "
     "have?",
     R"(\b5\b|\bfive\b)"},
    {"GFDL-1.3",
     "According to the GNU Free Documentation License, version 1.3, you must enclose printed copies of the Document "
     "in covers when you publish more than how many of them?",
     R"(\b100\b|hundred)"},
    {"GFDL-1.3",
     "Under the GNU Free Documentation License, version 1.3, before what date may the operator of an MMC Site "
     "republish an MMC under CC-BY-SA on the same site?",
     R"(August 1,? 2009|1(st)? (of )?August,? 2009)"},
    {"GFDL-1.3", "On what date was the GNU Free Documentation License, version 1.3 published?",
     R"((\b3(rd)? (of )?November|November 3(rd)?),? 2008)"},
    // LGPL-3.
    {"LGPL-3",
     "According to the GNU Lesser General Public License, version 3, inline functions and templates taken from a "
     "library's header files may be at most how many lines in length?",
     R"(\b10\b|\bten\b)"},
    {"LGPL-3", "What is the title of section 4 of the GNU Lesser General Public License, version 3?",
     R"(combined works)"},
    // Artistic.
    {"Artistic",
     "Which archive site does The Artistic License give as an example of a major archive site for placing "
     "modifications?",
     R"(uunet)"},
    {"Artistic",
     "According to The Artistic License, whose name may not be used to endorse or promote products derived from the "
     "software without specific prior written permission?",
     R"(copyright holder)"},
};

}  // namespace

std::span<const DocqaDocument> docqa_documents() { return kDocuments; }
std::span<const DocqaQuestion> docqa_questions() { return kQuestions; }

}  // namespace fkv
