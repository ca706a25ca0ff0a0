// Tests for csrc/engine/json.{h,cc} and csrc/engine/sha256.{h,cc}: a plain
// program (no framework) that tests/csrc/test_json_sha256.py builds with
// sanitizers and runs.
//
//   test_json_sha256 [--sha256-vectors DATA LIST] [--bench]
//
// DATA is a binary file and LIST has lines "offset length hexdigest" made by
// Python's hashlib over DATA[offset:offset+length]. --bench prints SHA-256
// and JSON throughput. The last line is "N passed, N failed"; the exit status
// is non-zero if anything failed.

#include <algorithm>
#include <clocale>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <fstream>
#include <functional>
#include <limits>
#include <memory>
#include <new>
#include <string>
#include <string_view>
#include <vector>

#include "engine/json.h"
#include "engine/sha256.h"

// ---------------------------------------------------------------------------
// Live heap bytes, to check the parser's memory stays a bounded multiple of
// its input. Replacing the global operator new is allowed (and works under
// ASan, which then still checks the malloc'd blocks).

namespace {
size_t g_live = 0;
size_t g_peak = 0;
constexpr size_t kHeader = 16;  // keeps the max_align_t alignment of malloc

void* counted_alloc(size_t n) {
  void* block = std::malloc(n + kHeader);
  if (!block) throw std::bad_alloc();
  *static_cast<size_t*>(block) = n;
  g_live += n;
  if (g_live > g_peak) g_peak = g_live;
  return static_cast<char*>(block) + kHeader;
}

void counted_free(void* p) noexcept {
  if (!p) return;
  char* block = static_cast<char*>(p) - kHeader;
  g_live -= *reinterpret_cast<size_t*>(block);
  std::free(block);
}
}  // namespace

void* operator new(size_t n) { return counted_alloc(n); }
void* operator new[](size_t n) { return counted_alloc(n); }
void operator delete(void* p) noexcept { counted_free(p); }
void operator delete[](void* p) noexcept { counted_free(p); }
void operator delete(void* p, size_t) noexcept { counted_free(p); }
void operator delete[](void* p, size_t) noexcept { counted_free(p); }

// ---------------------------------------------------------------------------
// CHECK: counts, prints each failure with its line, and goes on.

namespace {
int g_passed = 0;
int g_failed = 0;

bool check(bool ok, const char* expr, int line, const std::string& context = {}) {
  if (ok) {
    ++g_passed;
  } else {
    ++g_failed;
    std::printf("FAIL line %d: %s%s%s\n", line, expr, context.empty() ? "" : "  -- ", context.c_str());
  }
  return ok;
}
}  // namespace

#define CHECK(cond) check(static_cast<bool>(cond), #cond, __LINE__)
#define CHECK_CTX(cond, ctx) check(static_cast<bool>(cond), #cond, __LINE__, (ctx))

namespace json = onebit::json;

namespace {

// Printable form of a test input for failure messages.
std::string show(std::string_view s) {
  std::string out;
  for (size_t i = 0; i < s.size() && i < 80; ++i) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    if (c >= 0x20 && c < 0x7f) {
      out += static_cast<char>(c);
    } else {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", c);
      out += buf;
    }
  }
  if (s.size() > 80) out += "...(" + std::to_string(s.size()) + " bytes)";
  return out;
}

// Parses a copy of `text` in a heap block of exactly its size, so ASan
// reports any read past the end (a std::string would hide one behind its NUL).
json::Value parse_exact(std::string_view text, const json::Limits& limits = {}) {
  std::unique_ptr<char[]> copy(new char[text.size() ? text.size() : 1]);
  if (!text.empty()) std::memcpy(copy.get(), text.data(), text.size());
  return json::parse(std::string_view(copy.get(), text.size()), limits);
}

enum class Outcome { kOk, kParseError, kOther };

// Parses; returns the outcome and, for a ParseError, its message and offset.
Outcome try_parse(std::string_view text, std::string* message = nullptr, size_t* offset = nullptr,
                  const json::Limits& limits = {}) {
  try {
    parse_exact(text, limits);
    return Outcome::kOk;
  } catch (const json::ParseError& e) {
    if (message) *message = e.what();
    if (offset) *offset = e.offset;
    return e.offset <= text.size() ? Outcome::kParseError : Outcome::kOther;
  } catch (...) {
    return Outcome::kOther;
  }
}

bool rejects(std::string_view text, std::string_view expect_in_message = {}, size_t expect_offset = SIZE_MAX,
             const json::Limits& limits = {}) {
  std::string msg;
  size_t off = 0;
  if (try_parse(text, &msg, &off, limits) != Outcome::kParseError) return false;
  if (!expect_in_message.empty() && msg.find(expect_in_message) == std::string::npos) {
    std::printf("  message for [%s] was: %s\n", show(text).c_str(), msg.c_str());
    return false;
  }
  if (expect_offset != SIZE_MAX && off != expect_offset) {
    std::printf("  offset for [%s] was %zu (%s)\n", show(text).c_str(), off, msg.c_str());
    return false;
  }
  return true;
}

bool same(const json::Value& a, const json::Value& b) {
  if (a.type() != b.type()) return false;
  switch (a.type()) {
    case json::Type::kNull: return true;
    case json::Type::kBool: return a.as_bool() == b.as_bool();
    case json::Type::kNumber: {
      const double x = a.as_double(), y = b.as_double();  // bitwise: -0.0 differs from 0.0
      return a.is_integer() == b.is_integer() && (!a.is_integer() || a.as_int() == b.as_int()) &&
             std::memcmp(&x, &y, sizeof x) == 0;
    }
    case json::Type::kString: return a.as_string() == b.as_string();
    case json::Type::kArray: {
      if (a.size() != b.size()) return false;
      for (size_t i = 0; i < a.size(); ++i)
        if (!same(a.as_array()[i], b.as_array()[i])) return false;
      return true;
    }
    case json::Type::kObject: {
      if (a.size() != b.size()) return false;
      for (size_t i = 0; i < a.size(); ++i) {
        if (a.as_object()[i].first != b.as_object()[i].first) return false;
        if (!same(a.as_object()[i].second, b.as_object()[i].second)) return false;
      }
      return true;
    }
  }
  return false;
}

template <typename F>
bool throws_type_error(F&& f) {
  try {
    f();
  } catch (const json::TypeError&) {
    return true;
  } catch (...) {
    return false;
  }
  return false;
}

// A realistic graph description, touching every kind of value and escape.
const char kDocument[] =
    "{\"format_version\":1,\"producer\":{\"onebit\":\"0.1.0\",\"torch\":\"2.4\",\"date\":\"2024-05-01\"},"
    "\"inputs\":[{\"name\":\"x\",\"shape\":[-1,3,32,32],\"dtype\":\"float32\"}],"
    "\"outputs\":[{\"name\":\"y\",\"shape\":[-1,10],\"dtype\":\"float32\"}],"
    "\"tensors\":{\"w0\":{\"dtype\":\"uint64\",\"shape\":[64,1,3,3],\"offset\":0,\"nbytes\":4608}},"
    "\"nodes\":[{\"op\":\"bconv2d\",\"inputs\":[\"x\"],\"outputs\":[\"y\"],"
    "\"attrs\":{\"stride\":[1,1],\"pad\":1,\"eps\":1.5e-5,\"scale\":-0.25E+1,\"fused\":true,\"act\":null,"
    "\"off\":false},\"params\":{\"w\":\"w0\"}}],"
    "\"note\":\"caf\\u00e9 \\ud83d\\ude00 \xc3\xa9\xf0\x9f\x98\x80 \\\"\\\\\\/\\b\\f\\n\\r\\t\","
    "\"empty\":[],\"none\":{},\"nested\":[[[]],[{}],[\"\"]]} ";

// ---------------------------------------------------------------------------

void test_valid_documents() {
  using V = const json::Value&;
  struct Case {
    const char* text;
    std::function<bool(const json::Value&)> ok;
  };
  const Case cases[] = {
      {"0", [](V v) { return v.is_number() && v.is_integer() && v.as_int() == 0; }},
      {"-0",
       [](V v) { return v.is_integer() && v.as_int() == 0 && std::signbit(v.as_double()); }},
      {"-0.0", [](V v) { return v.is_integer() && std::signbit(v.as_double()); }},
      {"1", [](V v) { return v.as_int() == 1 && v.as_double() == 1.0; }},
      {"-1", [](V v) { return v.as_int() == -1; }},
      {"3.0", [](V v) { return v.is_integer() && v.as_int() == 3; }},
      {"3e2", [](V v) { return v.is_integer() && v.as_int() == 300; }},
      {"1.5e1", [](V v) { return v.is_integer() && v.as_int() == 15; }},
      {"0.1e1", [](V v) { return v.is_integer() && v.as_int() == 1; }},
      {"100e-2", [](V v) { return v.is_integer() && v.as_int() == 1; }},
      {"1E+2", [](V v) { return v.is_integer() && v.as_int() == 100; }},
      {"0e999999999999999999999999", [](V v) { return v.is_integer() && v.as_int() == 0; }},
      {"1.5", [](V v) { return !v.is_integer() && v.as_double() == 1.5; }},
      {"1e-1", [](V v) { return !v.is_integer() && v.as_double() == 0.1; }},
      {"0.1", [](V v) { return v.as_double() == 0.1; }},
      {"2.5e-3", [](V v) { return v.as_double() == 0.0025; }},
      {"1e23", [](V v) { return v.as_double() == 1e23; }},  // a classic rounding trap
      {"-1.5E-5", [](V v) { return v.as_double() == -1.5e-5; }},
      {"2.2250738585072011e-308", [](V v) { return v.as_double() == 2.2250738585072011e-308; }},
      {"4.9e-324", [](V v) { return v.as_double() == std::numeric_limits<double>::denorm_min(); }},
      {"1.7976931348623157e308",
       [](V v) { return v.as_double() == std::numeric_limits<double>::max(); }},
      {"1e18", [](V v) { return v.is_integer() && v.as_int() == 1000000000000000000; }},
      {"1e19", [](V v) { return !v.is_integer() && v.as_double() == 1e19; }},
      {"9223372036854775807", [](V v) { return v.is_integer() && v.as_int() == INT64_MAX; }},
      {"-9223372036854775808", [](V v) { return v.is_integer() && v.as_int() == INT64_MIN; }},
      {"9223372036854775808",
       [](V v) { return !v.is_integer() && v.as_double() == 9223372036854775808.0; }},
      {"-9223372036854775809", [](V v) { return !v.is_integer() && v.as_double() < -9.2e18; }},
      {"9007199254740993",  // exact as an int, rounded to even as a double
       [](V v) { return v.as_int() == 9007199254740993 && v.as_double() == 9007199254740992.0; }},
      {"123456789012345678901234567890",
       [](V v) { return !v.is_integer() && v.as_double() == 1.2345678901234568e29; }},
      {"1e-400", [](V v) { return v.as_double() == 0.0 && !std::signbit(v.as_double()); }},
      {"-1e-400", [](V v) { return v.as_double() == 0.0 && std::signbit(v.as_double()); }},
      {"0.0000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000"
       "00000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000"
       "00000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000"
       "000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000001",
       [](V v) { return v.as_double() == 0.0; }},
      {"true", [](V v) { return v.is_bool() && v.as_bool(); }},
      {"false", [](V v) { return v.is_bool() && !v.as_bool(); }},
      {"null", [](V v) { return v.is_null() && v.type() == json::Type::kNull; }},
      {"\"\"", [](V v) { return v.is_string() && v.as_string().empty(); }},
      {" \t\n\r\"a\" \t\n\r", [](V v) { return v.as_string() == "a"; }},
      {"[]", [](V v) { return v.is_array() && v.size() == 0 && v.as_array().empty(); }},
      {"{}", [](V v) { return v.is_object() && v.size() == 0 && v.as_object().empty(); }},
      {" [ 1 , 2 ] ", [](V v) { return v.size() == 2 && v.as_array()[1].as_int() == 2; }},
      {"[[[]]]", [](V v) { return v.as_array()[0].as_array()[0].is_array(); }},
      {"{\"\":0}", [](V v) { return v.find("") && v.find("")->as_int() == 0; }},
      {"{\"a\":{\"a\":1}}",  // the same key in different objects
       [](V v) { return v.find("a")->find("a")->as_int() == 1; }},
      {"{\"b\":1,\"a\":2,\"c\":3}",  // file order kept
       [](V v) {
         const auto& o = v.as_object();
         return o.size() == 3 && o[0].first == "b" && o[1].first == "a" && o[2].first == "c" && !v.find("d");
       }},
      {"{\"a\" : [1, {\"b\" : null}] , \"c\" : true}",
       [](V v) { return v.find("a")->as_array()[1].find("b")->is_null() && v.find("c")->as_bool(); }},
      {"\"\\\"\\\\\\/\\b\\f\\n\\r\\t\"", [](V v) { return v.as_string() == "\"\\/\b\f\n\r\t"; }},
      {"\"\\u0041\\u00e9\\u20AC\"", [](V v) { return v.as_string() == "A\xc3\xa9\xe2\x82\xac"; }},
      {"\"\\u0000\"", [](V v) { return v.as_string() == std::string(1, '\0'); }},
      {"\"\\uD83D\\uDE00\"", [](V v) { return v.as_string() == "\xf0\x9f\x98\x80"; }},
      {"\"\\ud800\\udc00\"", [](V v) { return v.as_string() == "\xf0\x90\x80\x80"; }},
      {"\"\\uDBFF\\uDFFF\"", [](V v) { return v.as_string() == "\xf4\x8f\xbf\xbf"; }},
      {"\"\\uFFFF\"", [](V v) { return v.as_string() == "\xef\xbf\xbf"; }},
      {"\"\x7f\"", [](V v) { return v.as_string() == "\x7f"; }},  // DEL is not a control
      {"\"\xc2\x80\xdf\xbf\xe0\xa0\x80\xed\x9f\xbf\xee\x80\x80\xf0\x90\x80\x80\xf4\x8f\xbf\xbf\"",
       [](V v) { return v.as_string().size() == 21; }},  // the edges of each UTF-8 range
      {"[1e-400, -0, 0.5]", [](V v) { return v.size() == 3; }},
  };
  for (const Case& c : cases) {
    try {
      json::Value v = parse_exact(c.text);
      CHECK_CTX(c.ok(v), show(c.text));
    } catch (const std::exception& e) {
      CHECK_CTX(false, show(c.text) + " threw " + e.what());
    }
  }

  // The whole realistic document.
  try {
    json::Value doc = parse_exact(kDocument);
    CHECK(doc.is_object() && doc.size() == 10);
    CHECK(doc.find("format_version")->as_int() == 1);
    const json::Value& node = doc.find("nodes")->as_array().at(0);
    CHECK(node.find("op")->as_string() == "bconv2d");
    const json::Value* attrs = node.find("attrs");
    CHECK(attrs->find("eps")->as_double() == 1.5e-5);
    CHECK(attrs->find("scale")->as_double() == -2.5);
    CHECK(attrs->find("fused")->as_bool() && !attrs->find("off")->as_bool() && attrs->find("act")->is_null());
    CHECK(doc.find("inputs")->as_array()[0].find("shape")->as_array()[0].as_int() == -1);
    CHECK(doc.find("tensors")->find("w0")->find("nbytes")->as_int() == 4608);
    CHECK(doc.find("note")->as_string() ==
          "caf\xc3\xa9 \xf0\x9f\x98\x80 \xc3\xa9\xf0\x9f\x98\x80 \"\\/\b\f\n\r\t");
    CHECK(doc.find("nested")->as_array()[2].as_array()[0].as_string().empty());
    CHECK(doc.find("none")->find("x") == nullptr);
  } catch (const std::exception& e) {
    CHECK_CTX(false, std::string("document threw ") + e.what());
  }
}

void test_invalid_documents() {
  using std::string_literals::operator""s;
  const std::string cases[] = {
      // structure
      "", " ", "\t\n", "[", "]", "{", "}", "[1", "[1,", "{\"a\"", "{\"a\":", "{\"a\":1", "[1,]", "[,1]",
      "[,]", "[1,,2]", "[1 2]", "{\"a\":1,}", "{,}", "{\"a\"}", "{\"a\":}", "{\"a\" 1}", "{\"a\"::1}",
      "{1:2}", "{null:1}", "{'a':1}", "['a']", "[1] [2]", "[1]x", "1 2", "{\"a\":1 \"b\":2}", "[1:2]",
      "{\"a\",1}", "[}", "{]", "[[]", "[]]", "{\"a\":1}}",
      // numbers
      "01", "-01", "00", "00.5", "1.", ".1", "-", "-.5", "+1", "1e", "1e+", "1E-", "1.e5", "1.5e", "0x10",
      "1e2e3", "1.2.3", "--1", "[-]", "- 1", "1 .5", "Infinity", "-Infinity", "NaN", "nan", "inf", "[NaN]",
      "1e400", "-1e400", "[1e1000000]", "1.7976931348623159e308", "1e99999999999999999999999",
      "1" + std::string(400, '0'),
      // literals
      "tru", "nul", "fals", "True", "NULL", "nulll", "truefalse", "t", "n",
      // comments and other extensions
      "/* c */1", "1 // c", "[1]//", "# 1", "[1,/**/2]",
      // strings
      "\"abc", "\"", "\"\\", "\"\\\"", "\"\\x41\"", "\"\\a\"", "\"\\'\"", "\"\\U0041\"", "\"\\u\"",
      "\"\\u12\"", "\"\\u12g4\"", "\"\\u-123\"", "\"\\uD800\"", "\"\\uDC00\"", "\"\\uDFFF\\uD800\"",
      "\"\\uD800\\u0041\"", "\"\\uD800\\uD800\"", "\"\\uD800x\"", "\"\\uD800\\\"", "\"\\uD800\\",
      "\"\\uD800\\u", "\"\\uD800\\uDC0\"", "\"\t\"", "\"\n\"", "\"\r\"", "\"\x01\"", "\"\x1f\"", "\"a\0b\""s,
      "\"\0\""s,
      // UTF-8 outside strings and malformed inside
      "\xef\xbb\xbf{}", "[\"a\"\xc3\xa9]", "\xc3\xa9", "\xa0" "1", "\"\xc0\x80\"", "\"\xc1\xbf\"",
      "\"\xe0\x80\x80\"", "\"\xe0\x9f\xbf\"", "\"\xed\xa0\x80\"", "\"\xed\xbf\xbf\"", "\"\xf0\x80\x80\x80\"",
      "\"\xf0\x8f\xbf\xbf\"", "\"\xf4\x90\x80\x80\"", "\"\xf5\x80\x80\x80\"", "\"\xf8\x88\x80\x80\x80\"",
      "\"\xff\"", "\"\xfe\"", "\"\x80\"", "\"\xbf\"", "\"\xc3\"", "\"\xc3", "\"\xe2\x82\"", "\"\xe2\x82",
      "\"\xf0\x9f\x98\"", "\"\xf0\x9f\x98", "\"\xc3\x28\"", "\"\xe2\x28\xa1\"",
      // whitespace that JSON does not have, and stray bytes
      "\f1", "\v1", "1\f", "\x00"s, "1\0"s, "[1]\0"s, "[1\0]"s, "\x1a",
      // duplicate keys
      "{\"a\":1,\"a\":2}", "{\"a\":{\"b\":1,\"b\":2}}", "[{\"x\":1,\"y\":2,\"x\":3}]", "{\"\":1,\"\":2}",
      "{\"\\u0061\":1,\"a\":2}",  // the same key after unescaping
  };
  for (const std::string& c : cases) CHECK_CTX(rejects(c), show(c));

  // Messages and offsets.
  CHECK(rejects("", "end of input", 0));
  CHECK(rejects("[", "end of input", 1));
  CHECK(rejects("[1,]", "unexpected ']'", 3));
  CHECK(rejects("[1]x", "after the top-level value", 3));
  CHECK(rejects("01", "leading zero", 0));
  CHECK(rejects("[-01]", "leading zero", 2));
  CHECK(rejects("1e400", "range", 0));
  CHECK(rejects("[0, -1e400]", "range", 4));
  CHECK(rejects("\"\\uD800\"", "surrogate", 1));
  CHECK(rejects("\"\\uDC00\"", "lone low surrogate", 1));
  CHECK(rejects("\"a\\qb\"", "invalid escape", 2));
  CHECK(rejects("\"ab\x01\"", "control character", 3));
  CHECK(rejects("\"ab\xed\xa0\x80\"", "UTF-8", 3));
  CHECK(rejects("\"abc", "end of input", 4));
  CHECK(rejects("{\"a\":1,\"a\":2}", "duplicate object key \"a\"", 7));
  CHECK(rejects("{\"a\\n\":1,\"a\\n\":2}", "duplicate object key \"a\\x0a\"", 9));
  CHECK(rejects("nul", "literal", 0));
  CHECK(rejects("{\"a\" 1}", "expected ':'", 5));
  CHECK(rejects("{1:2}", "string key", 1));
  CHECK(rejects("{\"a\":1 \"b\":2}", "expected ',' or '}'", 7));

  // Duplicates in a big object (the sorting path): the earliest repeat is named.
  std::string big = "{";
  size_t offset_of_first_repeat = 0;
  for (int k = 0; k < 1000; ++k) {
    int key = k == 900 ? 500 : k == 950 ? 100 : k;
    if (k) big += ',';
    if (k == 900) offset_of_first_repeat = big.size();
    big += "\"k" + std::to_string(key) + "\":" + std::to_string(k);
  }
  big += "}";
  CHECK(rejects(big, "duplicate object key \"k500\"", offset_of_first_repeat));
  // ...and without duplicates it parses, in order.
  std::string unique = "{";
  for (int k = 0; k < 1000; ++k) {
    unique += (k ? ",\"k" : "\"k") + std::to_string(k) + "\":" + std::to_string(k);
  }
  unique += "}";
  try {
    json::Value v = parse_exact(unique);
    CHECK(v.size() == 1000 && v.as_object()[999].first == "k999" && v.find("k123")->as_int() == 123);
  } catch (const std::exception& e) {
    CHECK_CTX(false, e.what());
  }
  // A long, unprintable duplicate key is quoted short and escaped in the message.
  std::string longkey = "\"" + std::string(500, '\x7f') + "\"";
  std::string msg;
  CHECK(try_parse("{" + longkey + ":1," + longkey + ":2}", &msg) == Outcome::kParseError);
  CHECK_CTX(msg.find("\\x7f\\x7f") != std::string::npos && msg.find("...") != std::string::npos &&
                msg.size() < 400,
            msg);
}

void test_limits() {
  // Depth: 64 levels by default, counted without recursion, so 100000 '['
  // fail fast at the 65th.
  CHECK(try_parse(std::string(64, '[') + std::string(64, ']')) == Outcome::kOk);
  CHECK(rejects(std::string(65, '[') + std::string(65, ']'), "nesting deeper than 64", 64));
  CHECK(rejects(std::string(100000, '['), "nesting deeper than 64", 64));
  std::string deep_objects;
  for (int k = 0; k < 100000; ++k) deep_objects += "{\"a\":";
  CHECK(rejects(deep_objects, "nesting deeper than 64", 64 * 5));
  std::string mixed;
  for (int k = 0; k < 100000; ++k) mixed += k % 2 ? "{\"a\":" : "[";
  CHECK(rejects(mixed, "nesting deeper"));
  json::Limits deep;
  deep.max_depth = 2000;
  CHECK(try_parse(std::string(2000, '[') + std::string(2000, ']'), nullptr, nullptr, deep) == Outcome::kOk);
  CHECK(rejects(std::string(2001, '['), "nesting deeper than 2000", 2000, deep));
  json::Limits flat;
  flat.max_depth = 0;
  CHECK(try_parse("1", nullptr, nullptr, flat) == Outcome::kOk);
  CHECK(rejects("[]", "nesting", 0, flat));

  json::Limits few;
  few.max_elements = 3;
  CHECK(try_parse("[1,2]", nullptr, nullptr, few) == Outcome::kOk);
  CHECK(try_parse("{\"a\":[1]}", nullptr, nullptr, few) == Outcome::kOk);
  CHECK(rejects("[1,2,3]", "max_elements", 5, few));
  CHECK(rejects("[[[[]]]]", "max_elements", 3, few));
  // The default bound of 4Mi values holds.
  std::string many = "[";
  for (size_t k = 0; k < (size_t{1} << 22); ++k) many += "0,";
  many += "0]";
  CHECK(rejects(many, "max_elements"));

  json::Limits short_strings;
  short_strings.max_string = 4;
  CHECK(try_parse("[\"abcd\"]", nullptr, nullptr, short_strings) == Outcome::kOk);
  CHECK(try_parse("\"\\u00e9\\u00e9\"", nullptr, nullptr, short_strings) == Outcome::kOk);  // 4 bytes
  CHECK(rejects("[\"abcde\"]", "max_string", 1, short_strings));
  CHECK(rejects("{\"abcde\":1}", "max_string", 1, short_strings));
  CHECK(rejects("\"\\u00e9\\u00e9\\u00e9\"", "max_string", 0, short_strings));
  CHECK(rejects("\"\xc3\xa9\xc3\xa9\xc3\xa9\"", "max_string", 0, short_strings));

  json::Limits small;
  small.max_bytes = 3;
  CHECK(try_parse("[1]", nullptr, nullptr, small) == Outcome::kOk);
  CHECK(rejects("[1] ", "max_bytes", 3, small));
}

// Every proper prefix of a valid document is an error (never a crash or a
// read past the end, which ASan would report: parse_exact copies exactly).
void test_truncation() {
  const std::string doc = kDocument;
  const std::string trimmed = doc.substr(0, doc.size() - 1);  // drop the trailing space
  int bad = 0;
  for (size_t n = 0; n < trimmed.size(); ++n) {
    size_t off = 0;
    if (try_parse(std::string_view(trimmed.data(), n), nullptr, &off) != Outcome::kParseError || off > n) {
      if (++bad < 5) std::printf("  prefix of %zu bytes: not a clean ParseError\n", n);
    }
  }
  CHECK_CTX(bad == 0, std::to_string(bad) + " prefixes");
  CHECK(try_parse(trimmed) == Outcome::kOk);
  CHECK(try_parse(doc) == Outcome::kOk);
}

// Single-byte edits of the valid document and random byte strings: whatever
// comes out, it is a value or a ParseError within the input.
void test_mutations() {
  const std::string doc = kDocument;
  const char replacements[] = {'\0', '"', '\\', '[', ']', '{', '}', ',', ':', '0', '9', '-', '+', 'e', '.',
                               ' ', 'u', 'x', 'n', '\x7f', '\x80', '\xbf', '\xc3', '\xed', '\xf0', '\xf4',
                               '\xff'};
  int bad = 0, parsed = 0, total = 0;
  auto run = [&](const std::string& text) {
    ++total;
    Outcome o = try_parse(text);
    if (o == Outcome::kOk) ++parsed;
    if (o == Outcome::kOther && ++bad < 5) std::printf("  bad outcome for [%s]\n", show(text).c_str());
  };
  for (size_t i = 0; i < doc.size(); ++i) {
    for (char r : replacements) {
      std::string m = doc;
      m[i] = r;
      run(m);
    }
    run(doc.substr(0, i) + doc.substr(i + 1));            // deletion
    run(doc.substr(0, i + 1) + doc.substr(i));            // duplication
  }
  uint64_t state = 0x9E3779B97F4A7C15ull;  // splitmix64: fixed, reproducible inputs
  auto next = [&] {
    uint64_t z = (state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  };
  const char alphabet[] = "[]{},:\"\\/0123456789-+.eEtruefalsn \t\nu\x80\xc3\xe2\xf0";
  for (int k = 0; k < 30000; ++k) {
    std::string s(next() % 24, ' ');
    for (char& c : s) c = k % 3 == 0 ? static_cast<char>(next()) : alphabet[next() % (sizeof alphabet - 1)];
    run(s);
  }
  CHECK_CTX(bad == 0, std::to_string(bad) + " of " + std::to_string(total));
  std::printf("mutations: %d inputs, %d parsed, the rest rejected cleanly\n", total, parsed);
}

// The tree and the parse's peak stay a bounded multiple of the input, also
// for the inputs that cost the most memory per byte.
void test_memory_bound() {
  struct Case {
    const char* name;
    std::string text;
  };
  auto repeat = [](const char* open, const char* item, const char* close, size_t n) {
    std::string s = open;
    for (size_t k = 0; k < n; ++k) {
      if (k) s += ',';
      s += item;
    }
    return s + close;
  };
  std::string keys = "{";
  for (size_t k = 0; k < 200000; ++k) keys += (k ? ",\"" : "\"") + std::to_string(k) + "\":0";
  keys += "}";
  const Case cases[] = {
      {"[0,0,...]", repeat("[", "0", "]", 1000000)},
      {"[[],[],...]", repeat("[", "[]", "]", 500000)},
      {"[{},{},...]", repeat("[", "{}", "]", 500000)},
      {"[\"a\",\"a\",...]", repeat("[", "\"a\"", "]", 500000)},
      {"[[0],[0],...]", repeat("[", "[0]", "]", 300000)},
      {"[[[[[[[[0]]]]]]],...]", repeat("[", "[[[[[[[0]]]]]]]", "]", 100000)},
      {"[{\"a\":0},...]", repeat("[", "{\"a\":0}", "]", 200000)},
      {"{\"0\":0,\"1\":0,...}", keys},
      {"[1.5,1.5,...]", repeat("[", "1.5", "]", 500000)},
      {"long string", "\"" + std::string(1000000, 'x') + "\""},
  };
  for (const Case& c : cases) {
    const size_t before = g_live;
    g_peak = g_live;
    size_t tree = 0;
    try {
      json::Value v = json::parse(c.text);
      tree = g_live - before;
    } catch (const std::exception& e) {
      CHECK_CTX(false, std::string(c.name) + " threw " + e.what());
    }
    const size_t peak = g_peak - before;
    const double n = static_cast<double>(c.text.size());
    std::printf("memory: %-22s input %8zu B, tree %5.1fx, peak %5.1fx\n", c.name, c.text.size(), tree / n,
                peak / n);
    const bool freed = g_live == before;  // before CHECK_CTX's message string allocates
    CHECK_CTX(tree <= 20 * c.text.size() + 4096, c.name);
    CHECK_CTX(peak <= 32 * c.text.size() + 4096, c.name);
    CHECK_CTX(freed, std::string(c.name) + ": leaked");
  }
}

void test_value_api() {
  json::Value v =
      json::parse("{\"n\":1.5,\"i\":7,\"s\":\"x\",\"a\":[1,2],\"o\":{\"k\":null},\"b\":true,\"z\":null}");
  const json::Value& n = *v.find("n");
  const json::Value& i = *v.find("i");
  const json::Value& s = *v.find("s");
  const json::Value& a = *v.find("a");
  const json::Value& o = *v.find("o");
  const json::Value& b = *v.find("b");
  const json::Value& z = *v.find("z");
  CHECK(throws_type_error([&] { (void)n.as_int(); }));
  CHECK(throws_type_error([&] { (void)s.as_double(); }));
  CHECK(throws_type_error([&] { (void)i.as_string(); }));
  CHECK(throws_type_error([&] { (void)a.as_object(); }));
  CHECK(throws_type_error([&] { (void)o.as_array(); }));
  CHECK(throws_type_error([&] { (void)z.as_bool(); }));
  CHECK(throws_type_error([&] { (void)b.as_int(); }));
  CHECK(throws_type_error([&] { (void)b.as_double(); }));
  try {
    (void)s.as_double();
  } catch (const std::runtime_error& e) {  // TypeError is a runtime_error
    CHECK_CTX(std::string(e.what()).find("expected number, got string") != std::string::npos, e.what());
  }
  CHECK(!b.is_integer() && !s.is_integer() && i.is_integer() && !n.is_integer());
  CHECK(a.find("x") == nullptr && s.find("") == nullptr && z.find("k") == nullptr);
  CHECK(s.size() == 0 && n.size() == 0 && a.size() == 2 && o.size() == 1 && v.size() == 7);
  CHECK(i.as_double() == 7.0);
  CHECK(std::string(json::type_name(json::Type::kObject)) == "object");

  // Copies are deep, moves leave null behind, assignment from a child works.
  json::Value copy = v;
  CHECK(same(copy, v));
  CHECK(&copy.find("a")->as_array() != &v.find("a")->as_array());
  json::Value moved = std::move(copy);
  CHECK(same(moved, v) && copy.is_null());
  json::Value tree = json::parse("[[1,[2,3]],\"s\",{}]");
  tree = tree.as_array()[0];
  CHECK(tree.size() == 2 && tree.as_array()[1].as_array()[1].as_int() == 3);
  json::Value empty;
  CHECK(empty.is_null() && empty.size() == 0 && empty.find("a") == nullptr);
  empty = v;
  CHECK(same(empty, v));
  empty = json::Value();
  CHECK(empty.is_null());

  // ParseError is a runtime_error carrying the offset.
  try {
    json::parse("[1,]");
    CHECK(false);
  } catch (const std::runtime_error& e) {
    const auto* pe = dynamic_cast<const json::ParseError*>(&e);
    CHECK(pe && pe->offset == 3 && std::string(e.what()).find("at byte 3") != std::string::npos);
  }
}

// Numbers must not depend on the C locale (a ',' decimal point would break
// strtod-based parsers). Needs a locale that uses ','; skipped if none is installed.
void test_locale_independence() {
  const char* names[] = {"de_DE.UTF-8", "de_DE.utf8", "fr_FR.UTF-8", "fr_FR.utf8", "ru_RU.UTF-8"};
  const char* chosen = nullptr;
  for (const char* name : names) {
    if (std::setlocale(LC_ALL, name) && std::strcmp(std::localeconv()->decimal_point, ",") == 0) {
      chosen = name;
      break;
    }
  }
  if (chosen) {
    CHECK(std::strtod("1.5", nullptr) == 1.0);  // the locale is really in force
    std::printf("locale: numbers checked under %s\n", chosen);
  } else {
    std::printf("locale: no locale with a ',' decimal point installed; checked the C locale only\n");
  }
  CHECK(json::parse("[1.5, 2.25e1]").as_array()[1].as_double() == 22.5);
  CHECK(json::parse("0.125").as_double() == 0.125);
  std::setlocale(LC_ALL, "C");
}

// ---------------------------------------------------------------------------
// SHA-256

std::string hex(const std::array<uint8_t, 32>& d) {
  static const char kHex[] = "0123456789abcdef";
  std::string s;
  for (uint8_t b : d) {
    s += kHex[b >> 4];
    s += kHex[b & 15];
  }
  return s;
}

std::string sha_hex(std::string_view s) { return hex(onebit::sha256(s.data(), s.size())); }

void test_sha256_fips() {
  // FIPS 180-4 / NIST CSRC example values.
  CHECK(sha_hex("") == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  CHECK(hex(onebit::sha256(nullptr, 0)) ==
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  CHECK(sha_hex("abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  CHECK(sha_hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq") ==
        "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
  CHECK(sha_hex("abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmnoijklmnopjklmnopqklmnopqrlmn"

                               "opqrsmnopqrstnopqrstu") ==
        "cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1");
  CHECK(sha_hex(std::string(1000000, 'a')) ==
        "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

// Digests made by Python's hashlib (see the header comment).
void test_sha256_vectors(const char* data_path, const char* list_path) {
  std::ifstream data_file(data_path, std::ios::binary);
  std::ifstream list(list_path);
  if (!CHECK_CTX(data_file && list, "cannot open the vector files")) return;
  std::string data((std::istreambuf_iterator<char>(data_file)), std::istreambuf_iterator<char>());
  size_t offset, length;
  std::string expected;
  int count = 0, bad = 0;
  while (list >> offset >> length >> expected) {
    ++count;
    if (offset + length > data.size()) {
      ++bad;
      continue;
    }
    // A block of exactly `length` bytes, so ASan sees any read past the end.
    std::unique_ptr<uint8_t[]> buf(new uint8_t[length + 8]);
    uint8_t* p = buf.get() + offset % 8;  // the file's offsets also vary the alignment
    std::memcpy(p, data.data() + offset, length);
    if (hex(onebit::sha256(p, length)) != expected && ++bad < 5) {
      std::printf("  sha256 mismatch: offset %zu length %zu\n", offset, length);
    }
  }
  CHECK_CTX(count > 0 && bad == 0, std::to_string(bad) + " of " + std::to_string(count) + " digests wrong");
  std::printf("sha256: %d hashlib digests compared\n", count);
}

// ---------------------------------------------------------------------------

// Processor time, not wall time: on a shared machine other processes would
// otherwise be counted against us.
double seconds_best_of(int runs, const std::function<void()>& f) {
  double best = 1e30;
  for (int r = 0; r < runs; ++r) {
    const std::clock_t t0 = std::clock();
    f();
    best = std::min(best, static_cast<double>(std::clock() - t0) / CLOCKS_PER_SEC);
  }
  return best;
}

void bench() {
  std::vector<uint8_t> buf(size_t{128} << 20);
  for (size_t k = 0; k < buf.size(); ++k) buf[k] = static_cast<uint8_t>(k * 2654435761u >> 13);
  volatile uint8_t sink = 0;
  double t = seconds_best_of(3, [&] { sink = sink + onebit::sha256(buf.data(), buf.size())[0]; });
  std::printf("bench: sha256 %.0f MB/s (128 MiB, best of 3, CPU time)\n", buf.size() / t / 1e6);

  std::string doc = "{\"tensors\":{";
  for (int k = 0; k < 100000; ++k) {
    doc += (k ? ",\"layer" : "\"layer") + std::to_string(k) +
           ".weight\":{\"dtype\":\"uint64\",\"shape\":[64,1,3,3],\"offset\":" + std::to_string(k * 4608) +
           ",\"nbytes\":4608,\"scale\":0.0123,\"note\":\"caf\\u00e9\"}";
  }
  doc += "}}";
  t = seconds_best_of(3, [&] { sink = sink + static_cast<uint8_t>(json::parse(doc).size()); });
  std::printf("bench: json parse %.0f MB/s (%.1f MB document, best of 3, CPU time)\n", doc.size() / t / 1e6,
              doc.size() / 1e6);
}

}  // namespace

int main(int argc, char** argv) {
  const char* data_path = nullptr;
  const char* list_path = nullptr;
  bool run_bench = false;
  for (int k = 1; k < argc; ++k) {
    std::string arg = argv[k];
    if (arg == "--sha256-vectors" && k + 2 < argc) {
      data_path = argv[++k];
      list_path = argv[++k];
    } else if (arg == "--bench") {
      run_bench = true;
    } else {
      std::printf("usage: %s [--sha256-vectors DATA LIST] [--bench]\n", argv[0]);
      return 2;
    }
  }

  test_valid_documents();
  test_invalid_documents();
  test_limits();
  test_truncation();
  test_mutations();
  test_memory_bound();
  test_value_api();
  test_locale_independence();
  test_sha256_fips();
  if (data_path) {
    test_sha256_vectors(data_path, list_path);
  } else {
    std::printf("sha256: no hashlib vectors given (tests/csrc/test_json_sha256.py passes them)\n");
  }
  if (run_bench) bench();

  std::printf("%d passed, %d failed\n", g_passed, g_failed);
  return g_failed ? 1 : 0;
}
