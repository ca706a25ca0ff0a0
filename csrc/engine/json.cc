#include "engine/json.h"

// <charconv> first: it defines __cpp_lib_to_chars when std::from_chars can
// read doubles (libstdc++ 11+). libc++ before LLVM 20 lacks that, so there the
// POSIX fallback below is used (also forced with -DONEBIT_JSON_USE_STRTOD,
// which the tests do to keep the fallback working).
#include <charconv>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <memory>
#include <system_error>

#if !defined(__cpp_lib_to_chars) || defined(ONEBIT_JSON_USE_STRTOD)
#define ONEBIT_JSON_STRTOD 1
#include <clocale>
#include <cstdlib>
#include <locale.h>
#if defined(__APPLE__)
#include <xlocale.h>
#endif
#endif

namespace onebit {
namespace json {

const char* type_name(Type t) {
  switch (t) {
    case Type::kNull: return "null";
    case Type::kBool: return "bool";
    case Type::kNumber: return "number";
    case Type::kString: return "string";
    case Type::kArray: return "array";
    case Type::kObject: return "object";
  }
  return "?";
}

ParseError::ParseError(const std::string& what, size_t at)
    : std::runtime_error("json: " + what + " at byte " + std::to_string(at)), offset(at) {}

namespace {

[[noreturn]] void type_error(Type want, Type got) {
  throw TypeError(std::string("json: expected ") + type_name(want) + ", got " + type_name(got));
}

// Shared empties for the null-pointer payloads (function-local statics: safe
// even if someone parses during static initialization).
const std::string& empty_string() {
  static const std::string s;
  return s;
}
const Value::Array& empty_array() {
  static const Value::Array a;
  return a;
}
const Value::Object& empty_object() {
  static const Value::Object o;
  return o;
}

// A key or character for an error message: attacker-controlled bytes are
// escaped and long keys cut, so messages stay printable and short.
std::string quote(std::string_view s) {
  static const char kHex[] = "0123456789abcdef";
  constexpr size_t kMax = 64;
  std::string out = "\"";
  for (size_t i = 0; i < s.size() && i < kMax; ++i) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c >= 0x20 && c < 0x7f) {
      out += static_cast<char>(c);
    } else {
      out += "\\x";
      out += kHex[c >> 4];
      out += kHex[c & 15];
    }
  }
  if (s.size() > kMax) out += "...";
  out += '"';
  return out;
}

std::string describe_byte(unsigned char c) {
  if (c >= 0x20 && c < 0x7f) return std::string("'") + static_cast<char>(c) + "'";
  static const char kHex[] = "0123456789abcdef";
  return std::string("byte 0x") + kHex[c >> 4] + kHex[c & 15];
}

bool is_digit(char c) { return c >= '0' && c <= '9'; }

// Length of the well-formed UTF-8 sequence (Unicode table 3-7) starting with
// the non-ASCII byte s[0], or 0 if it is not one: rejects stray continuation
// bytes, overlong forms, UTF-16 surrogates, code points above U+10FFFF, and
// sequences cut by the end of the input (never reads past s + avail).
size_t utf8_sequence_length(const unsigned char* s, size_t avail) {
  auto cont = [](unsigned char c) { return (c & 0xC0) == 0x80; };
  unsigned char c = s[0];
  if (c < 0xC2) return 0;
  if (c < 0xE0) return avail >= 2 && cont(s[1]) ? 2 : 0;
  if (c < 0xF0) {
    if (avail < 3) return 0;
    unsigned char lo = c == 0xE0 ? 0xA0 : 0x80, hi = c == 0xED ? 0x9F : 0xBF;
    return s[1] >= lo && s[1] <= hi && cont(s[2]) ? 3 : 0;
  }
  if (c < 0xF5) {
    if (avail < 4) return 0;
    unsigned char lo = c == 0xF0 ? 0x90 : 0x80, hi = c == 0xF4 ? 0x8F : 0xBF;
    return s[1] >= lo && s[1] <= hi && cont(s[2]) && cont(s[3]) ? 4 : 0;
  }
  return 0;
}

void append_utf8(std::string& out, uint32_t cp) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

// Four hex digits at s (the caller checked they are in bounds), or -1.
int32_t hex4(const char* s) {
  int32_t v = 0;
  for (int k = 0; k < 4; ++k) {
    char c = s[k];
    int d;
    if (c >= '0' && c <= '9') {
      d = c - '0';
    } else if (c >= 'a' && c <= 'f') {
      d = c - 'a' + 10;
    } else if (c >= 'A' && c <= 'F') {
      d = c - 'A' + 10;
    } else {
      return -1;
    }
    v = v * 16 + d;
  }
  return v;
}

}  // namespace

// ---------------------------------------------------------------------------
// Value

// The memory bound in json.h rests on this: a tag and an 8-byte payload.
static_assert(sizeof(Value) <= 16, "json::Value grew: revisit the memory bound documented in json.h");

Value::Value(const Value& other) : type_(other.type_), flags_(other.flags_) {
  u_ = other.u_;
  // Deep copies; a null payload (empty container) stays null.
  switch (type_) {
    case Type::kString:
      if (other.u_.s) u_.s = new std::string(*other.u_.s);
      break;
    case Type::kArray:
      if (other.u_.a) u_.a = new Array(*other.u_.a);
      break;
    case Type::kObject:
      if (other.u_.o) u_.o = new Object(*other.u_.o);
      break;
    default:
      break;
  }
}

Value::Value(Value&& other) noexcept : type_(other.type_), flags_(other.flags_) {
  u_ = other.u_;
  other.type_ = Type::kNull;
  other.flags_ = 0;
  other.u_.i = 0;
}

Value& Value::operator=(const Value& other) {
  // Copy first: `other` may live inside *this.
  if (this != &other) *this = Value(other);
  return *this;
}

Value& Value::operator=(Value&& other) noexcept {
  if (this != &other) {
    destroy();
    type_ = other.type_;
    flags_ = other.flags_;
    u_ = other.u_;
    other.type_ = Type::kNull;
    other.flags_ = 0;
    other.u_.i = 0;
  }
  return *this;
}

Value::~Value() { destroy(); }

void Value::destroy() noexcept {
  switch (type_) {
    case Type::kString: delete u_.s; break;
    case Type::kArray: delete u_.a; break;
    case Type::kObject: delete u_.o; break;
    default: break;
  }
  type_ = Type::kNull;
  u_.i = 0;
}

bool Value::as_bool() const {
  if (type_ != Type::kBool) type_error(Type::kBool, type_);
  return u_.b;
}

double Value::as_double() const {
  if (type_ != Type::kNumber) type_error(Type::kNumber, type_);
  if (!(flags_ & kInteger)) return u_.d;
  if (flags_ & kNegativeZero) return -0.0;
  // The exact integer rounds once to the nearest double: the same result a
  // correctly rounded decimal conversion gives.
  return static_cast<double>(u_.i);
}

int64_t Value::as_int() const {
  if (!is_integer()) {
    if (type_ != Type::kNumber) type_error(Type::kNumber, type_);
    throw TypeError("json: number is not an integer in the int64 range");
  }
  return u_.i;
}

const std::string& Value::as_string() const {
  if (type_ != Type::kString) type_error(Type::kString, type_);
  return u_.s ? *u_.s : empty_string();
}

const Value::Array& Value::as_array() const {
  if (type_ != Type::kArray) type_error(Type::kArray, type_);
  return u_.a ? *u_.a : empty_array();
}

const Value::Object& Value::as_object() const {
  if (type_ != Type::kObject) type_error(Type::kObject, type_);
  return u_.o ? *u_.o : empty_object();
}

const Value* Value::find(std::string_view key) const {
  if (type_ != Type::kObject || !u_.o) return nullptr;
  for (const auto& member : *u_.o) {
    if (member.first == key) return &member.second;
  }
  return nullptr;
}

size_t Value::size() const {
  if (type_ == Type::kArray) return u_.a ? u_.a->size() : 0;
  if (type_ == Type::kObject) return u_.o ? u_.o->size() : 0;
  return 0;
}

// ---------------------------------------------------------------------------
// Parser: an explicit stack of open containers instead of recursion, so the
// nesting depth costs heap (bounded by max_depth), never C++ stack. Finished
// children wait on one scratch stack (values_, and keys_ for objects) and are
// moved into an exactly sized container when it closes, so the tree keeps no
// vector growth slack.

class Parser {
 public:
  Parser(std::string_view text, const Limits& limits)
      : p_(text.data()), n_(text.size()), lim_(limits) {}

  Value run();

 private:
  struct Frame {
    bool object;
    size_t values_base;  // first child in values_
    size_t keys_base;    // first key in keys_ (objects)
  };

  [[noreturn]] void fail(const std::string& what, size_t at) const {
    throw ParseError(what, std::min(at, n_));
  }
  unsigned char byte(size_t i) const { return static_cast<unsigned char>(p_[i]); }
  void skip_ws() {
    while (pos_ < n_) {
      char c = p_[pos_];
      if (c != ' ' && c != '\t' && c != '\n' && c != '\r') break;
      ++pos_;
    }
  }
  void count_element() {
    if (++elements_ > lim_.max_elements) {
      fail("more than " + std::to_string(lim_.max_elements) + " values (Limits::max_elements)", pos_);
    }
  }
  void check_string_size(const std::string& s, size_t start) const {
    if (s.size() > lim_.max_string) {
      fail("string longer than " + std::to_string(lim_.max_string) +
               " bytes (Limits::max_string), starting",
           start);
    }
  }

  void open(bool object);
  void close();
  void parse_key();
  std::string parse_string();
  Value parse_number();
  void parse_literal(const char* word, size_t len);
  void check_duplicate_keys(size_t base, size_t count) const;

  const char* p_;
  size_t n_;
  size_t pos_ = 0;
  Limits lim_;
  size_t elements_ = 0;
  std::vector<Frame> frames_;
  std::vector<Value> values_;
  std::vector<std::string> keys_;
  std::vector<size_t> key_offsets_;  // where each key in keys_ starts, for errors
};

Value Parser::run() {
  if (n_ > lim_.max_bytes) {
    fail("document of " + std::to_string(n_) + " bytes exceeds Limits::max_bytes", lim_.max_bytes);
  }
  for (;;) {
    // A value starts here.
    skip_ws();
    if (pos_ >= n_) fail("unexpected end of input, expected a value", pos_);
    count_element();
    char c = p_[pos_];
    switch (c) {
      case '[':
      case '{': {
        open(c == '{');
        ++pos_;
        skip_ws();
        char end = c == '{' ? '}' : ']';
        if (pos_ < n_ && p_[pos_] == end) {
          ++pos_;
          close();
          break;  // an empty container is a complete value
        }
        if (c == '{') parse_key();
        continue;  // its first value
      }
      case '"': {
        std::string s = parse_string();
        Value v;
        v.type_ = Type::kString;
        v.u_.s = s.empty() ? nullptr : new std::string(std::move(s));
        values_.push_back(std::move(v));
        break;
      }
      case 't': parse_literal("true", 4); break;
      case 'f': parse_literal("false", 5); break;
      case 'n': parse_literal("null", 4); break;
      default:
        if (c == '-' || is_digit(c)) {
          values_.push_back(parse_number());
          break;
        }
        fail("unexpected " + describe_byte(byte(pos_)) + ", expected a value", pos_);
    }

    // A value is complete: close containers until one wants another value.
    for (;;) {
      skip_ws();
      if (frames_.empty()) {
        if (pos_ != n_) fail("unexpected " + describe_byte(byte(pos_)) + " after the top-level value", pos_);
        return std::move(values_.back());
      }
      const bool object = frames_.back().object;
      const char end = object ? '}' : ']';
      if (pos_ >= n_) fail(std::string("unexpected end of input, expected ',' or '") + end + "'", pos_);
      if (p_[pos_] == ',') {
        ++pos_;
        skip_ws();
        if (object) parse_key();
        break;
      }
      if (p_[pos_] == end) {
        ++pos_;
        close();
        continue;
      }
      fail("unexpected " + describe_byte(byte(pos_)) + ", expected ',' or '" + end + "'", pos_);
    }
  }
}

void Parser::open(bool object) {
  if (frames_.size() >= lim_.max_depth) {
    fail("nesting deeper than " + std::to_string(lim_.max_depth) + " levels (Limits::max_depth)", pos_);
  }
  frames_.push_back(Frame{object, values_.size(), keys_.size()});
}

void Parser::close() {
  const Frame f = frames_.back();
  frames_.pop_back();
  const size_t count = values_.size() - f.values_base;
  Value v;
  if (!f.object) {
    v.type_ = Type::kArray;
    v.u_.a = nullptr;
    if (count) {
      auto arr = std::make_unique<Value::Array>();
      arr->reserve(count);
      for (size_t k = 0; k < count; ++k) arr->push_back(std::move(values_[f.values_base + k]));
      v.u_.a = arr.release();
    }
  } else {
    check_duplicate_keys(f.keys_base, count);
    v.type_ = Type::kObject;
    v.u_.o = nullptr;
    if (count) {
      auto obj = std::make_unique<Value::Object>();
      obj->reserve(count);
      for (size_t k = 0; k < count; ++k) {
        obj->emplace_back(std::move(keys_[f.keys_base + k]), std::move(values_[f.values_base + k]));
      }
      v.u_.o = obj.release();
    }
    keys_.resize(f.keys_base);
    key_offsets_.resize(f.keys_base);
  }
  values_.resize(f.values_base);  // shrinks: never constructs
  values_.push_back(std::move(v));
}

// Reports the earliest (in file order) repeat of a key among keys_[base, base+count).
void Parser::check_duplicate_keys(size_t base, size_t count) const {
  if (count < 2) return;
  size_t repeat = count;  // index of the earliest second occurrence found
  if (count <= 16) {
    // Small objects (nearly all of them): no allocation.
    for (size_t j = 1; j < count && repeat == count; ++j) {
      for (size_t i = 0; i < j; ++i) {
        if (keys_[base + i] == keys_[base + j]) {
          repeat = j;
          break;
        }
      }
    }
  } else {
    // Sorting, not hashing: O(n log n) whatever the keys, where an attacker
    // could pick keys that collide in an unseeded hash.
    std::vector<size_t> order(count);
    for (size_t k = 0; k < count; ++k) order[k] = k;
    std::sort(order.begin(), order.end(), [&](size_t a, size_t b) {
      int c = keys_[base + a].compare(keys_[base + b]);
      return c != 0 ? c < 0 : a < b;
    });
    for (size_t k = 1; k < count; ++k) {
      if (keys_[base + order[k]] == keys_[base + order[k - 1]]) repeat = std::min(repeat, order[k]);
    }
  }
  if (repeat != count) {
    fail("duplicate object key " + quote(keys_[base + repeat]), key_offsets_[base + repeat]);
  }
}

void Parser::parse_key() {
  if (pos_ >= n_) fail("unexpected end of input, expected a string key", pos_);
  if (p_[pos_] != '"') fail("unexpected " + describe_byte(byte(pos_)) + ", expected a string key", pos_);
  key_offsets_.push_back(pos_);
  keys_.push_back(parse_string());
  skip_ws();
  if (pos_ >= n_) fail("unexpected end of input, expected ':'", pos_);
  if (p_[pos_] != ':') fail("unexpected " + describe_byte(byte(pos_)) + ", expected ':'", pos_);
  ++pos_;
}

std::string Parser::parse_string() {
  const size_t start = pos_;  // the opening quote
  ++pos_;
  std::string out;
  for (;;) {
    // Copy a run of plain printable ASCII at once.
    const size_t run = pos_;
    while (pos_ < n_) {
      unsigned char c = byte(pos_);
      if (c < 0x20 || c == '"' || c == '\\' || c >= 0x80) break;
      ++pos_;
    }
    out.append(p_ + run, pos_ - run);
    check_string_size(out, start);
    if (pos_ >= n_) {
      fail("unexpected end of input in the string starting at byte " + std::to_string(start), pos_);
    }

    const unsigned char c = byte(pos_);
    if (c == '"') {
      ++pos_;
      return out;
    }
    if (c < 0x20) fail("unescaped control character " + describe_byte(c) + " in a string", pos_);
    if (c >= 0x80) {
      size_t len = utf8_sequence_length(reinterpret_cast<const unsigned char*>(p_) + pos_, n_ - pos_);
      if (!len) fail("invalid UTF-8 in a string", pos_);
      out.append(p_ + pos_, len);
      pos_ += len;
      continue;
    }
    // A backslash escape.
    if (pos_ + 1 >= n_) fail("unexpected end of input in an escape", n_);
    const char e = p_[pos_ + 1];
    switch (e) {
      case '"': out += '"'; break;
      case '\\': out += '\\'; break;
      case '/': out += '/'; break;
      case 'b': out += '\b'; break;
      case 'f': out += '\f'; break;
      case 'n': out += '\n'; break;
      case 'r': out += '\r'; break;
      case 't': out += '\t'; break;
      case 'u': {
        if (n_ - pos_ < 6) fail("unexpected end of input in a \\u escape", n_);
        int32_t cp = hex4(p_ + pos_ + 2);
        if (cp < 0) fail("invalid \\u escape (expected 4 hex digits)", pos_);
        if (cp >= 0xDC00 && cp <= 0xDFFF) fail("lone low surrogate in a \\u escape", pos_);
        if (cp >= 0xD800 && cp <= 0xDBFF) {
          // A high surrogate must be followed by an escaped low one.
          if (n_ - pos_ < 12 || p_[pos_ + 6] != '\\' || p_[pos_ + 7] != 'u') {
            fail("high surrogate in a \\u escape without a following low surrogate", pos_);
          }
          int32_t lo = hex4(p_ + pos_ + 8);
          if (lo < 0) fail("invalid \\u escape (expected 4 hex digits)", pos_ + 6);
          if (lo < 0xDC00 || lo > 0xDFFF) {
            fail("high surrogate in a \\u escape without a following low surrogate", pos_);
          }
          cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
          pos_ += 6;
        }
        append_utf8(out, static_cast<uint32_t>(cp));
        pos_ += 4;  // with the 2 below: the 6 bytes of \uXXXX
        break;
      }
      default:
        fail("invalid escape \\" + describe_byte(static_cast<unsigned char>(e)), pos_);
    }
    pos_ += 2;
  }
}

void Parser::parse_literal(const char* word, size_t len) {
  if (n_ - pos_ < len || std::memcmp(p_ + pos_, word, len) != 0) {
    fail("invalid literal (expected '" + std::string(word) + "')", pos_);
  }
  Value v;
  if (word[0] == 't' || word[0] == 'f') {
    v.type_ = Type::kBool;
    v.u_.b = word[0] == 't';
  }
  pos_ += len;
  values_.push_back(std::move(v));
}

Value Parser::parse_number() {
  // Grammar first (RFC 8259 section 6), so the converters below only ever
  // see a valid token and every error names the offending byte.
  const size_t start = pos_;
  const bool negative = p_[pos_] == '-';
  if (negative) ++pos_;
  if (pos_ >= n_ || !is_digit(p_[pos_])) fail("expected a digit after '-'", pos_);
  const size_t int_begin = pos_;
  if (p_[pos_] == '0') {
    ++pos_;
    if (pos_ < n_ && is_digit(p_[pos_])) fail("leading zero in a number", pos_ - 1);
  } else {
    while (pos_ < n_ && is_digit(p_[pos_])) ++pos_;
  }
  const size_t int_end = pos_;
  size_t frac_begin = pos_, frac_end = pos_;
  if (pos_ < n_ && p_[pos_] == '.') {
    ++pos_;
    if (pos_ >= n_ || !is_digit(p_[pos_])) fail("expected a digit after the decimal point", pos_);
    frac_begin = pos_;
    while (pos_ < n_ && is_digit(p_[pos_])) ++pos_;
    frac_end = pos_;
  }
  int64_t exp10 = 0;
  if (pos_ < n_ && (p_[pos_] == 'e' || p_[pos_] == 'E')) {
    ++pos_;
    bool exp_negative = false;
    if (pos_ < n_ && (p_[pos_] == '+' || p_[pos_] == '-')) exp_negative = p_[pos_++] == '-';
    if (pos_ >= n_ || !is_digit(p_[pos_])) fail("expected a digit in the exponent", pos_);
    // Saturates: beyond 1e12 every nonzero number is out of range anyway,
    // and the digits of a huge exponent must not overflow an int64.
    constexpr int64_t kSaturate = 1000000000000;
    while (pos_ < n_ && is_digit(p_[pos_])) {
      if (exp10 < kSaturate) exp10 = exp10 * 10 + (p_[pos_] - '0');
      ++pos_;
    }
    if (exp_negative) exp10 = -exp10;
  }

  // The exact value is digits[first, last) * 10^scale, with the digits of
  // the integer and fraction parts read as one string, leading and trailing
  // zeros stripped.
  const size_t ni = int_end - int_begin, nf = frac_end - frac_begin, total = ni + nf;
  auto digit_at = [&](size_t k) { return k < ni ? p_[int_begin + k] : p_[frac_begin + (k - ni)]; };
  size_t first = 0;
  while (first < total && digit_at(first) == '0') ++first;

  Value v;
  v.type_ = Type::kNumber;
  if (first == total) {
    // Zero, whatever the exponent: the integer 0 (a double -0.0 if signed).
    v.flags_ = static_cast<uint8_t>(Value::kInteger | (negative ? Value::kNegativeZero : 0));
    v.u_.i = 0;
    return v;
  }
  size_t last = total;
  while (digit_at(last - 1) == '0') --last;
  const int64_t ndigits = static_cast<int64_t>(last - first);
  const int64_t scale = exp10 - static_cast<int64_t>(nf) + static_cast<int64_t>(total - last);

  // An exact int64? 19 digits fit a uint64; the sign decides the bound.
  if (scale >= 0 && ndigits + scale <= 19) {
    uint64_t m = 0;
    for (size_t k = first; k < last; ++k) m = m * 10 + static_cast<uint64_t>(digit_at(k) - '0');
    for (int64_t k = 0; k < scale; ++k) m *= 10;
    constexpr uint64_t kMaxPositive = static_cast<uint64_t>(INT64_MAX);
    if (m <= kMaxPositive || (negative && m == kMaxPositive + 1)) {
      v.flags_ = Value::kInteger;
      v.u_.i = !negative ? static_cast<int64_t>(m) : m > kMaxPositive ? INT64_MIN : -static_cast<int64_t>(m);
      return v;
    }
  }

  // Otherwise a double. The magnitude is 10^(ndigits + scale - 1) or more,
  // which tells overflow (an error) from underflow (rounds to zero).
  const bool too_big = ndigits + scale - 1 > 0;
  double d = 0;
#if !defined(ONEBIT_JSON_STRTOD)
  const std::from_chars_result r = std::from_chars(p_ + start, p_ + pos_, d);
  if (r.ec == std::errc::result_out_of_range) {
    if (too_big) fail("number out of the range of a double", start);
    d = negative ? -0.0 : 0.0;
  } else if (r.ec != std::errc() || r.ptr != p_ + pos_) {
    fail("number could not be converted", start);
  }
#else
  // strtod reads the C locale's decimal point only when told to: switch this
  // thread (not the process) to the C locale around the call.
  static const locale_t c_locale = newlocale(LC_ALL_MASK, "C", static_cast<locale_t>(0));
  if (c_locale == static_cast<locale_t>(0)) throw std::runtime_error("json: cannot create the C locale");
  const std::string token(p_ + start, pos_ - start);  // strtod needs a terminator
  char* end = nullptr;
  const locale_t previous = uselocale(c_locale);
  d = std::strtod(token.c_str(), &end);
  uselocale(previous);
  if (end != token.c_str() + token.size()) fail("number could not be converted", start);
  // ERANGE also flags (correctly rounded) subnormal results: only inf is an error.
  if (std::isinf(d) && too_big) fail("number out of the range of a double", start);
#endif
  if (!std::isfinite(d)) fail("number out of the range of a double", start);
  v.u_.d = d;
  return v;
}

Value parse(std::string_view text, const Limits& limits) { return Parser(text, limits).run(); }

}  // namespace json
}  // namespace onebit
