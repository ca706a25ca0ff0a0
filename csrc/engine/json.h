// A strict JSON (RFC 8259) parser for the graph description inside .onebit
// files, which may come from an attacker.
//
// Strict: no comments, trailing commas, NaN/Infinity, leading zeros, control
// characters in strings or invalid UTF-8; lone surrogate escapes and duplicate
// object keys are errors; whitespace is allowed only around the one top-level
// value. Hardened: the parser never recurses (nesting depth, element count,
// string length and input size are bounded by Limits), never reads outside
// `text`, and the memory it takes is a bounded multiple of the input size:
// the tree is at most about 20x (8x for a flat array of one-digit numbers,
// 20x for deeply nested one-element arrays), and the parse peaks below 32x
// (scratch stacks). Numbers are read independently of the C locale.
//
//   onebit::json::Value doc = onebit::json::parse(text);   // throws ParseError
//   const onebit::json::Value* nodes = doc.find("nodes");
//   if (!nodes || !nodes->is_array()) { ... }
//   for (const auto& node : nodes->as_array()) { ... node.find("op")->as_string() ... }
//
// Values are immutable once parsed; a parsed tree may be read from many
// threads at once. Destroying or copying a Value recurses once per nesting
// level, so keep Limits::max_depth modest (the default 64 is).
#pragma once

#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace onebit {
namespace json {

enum class Type { kNull, kBool, kNumber, kString, kArray, kObject };

// "null", "bool", ... for error messages.
const char* type_name(Type t);

// Thrown by Value's as_*() accessors on a value of another type.
struct TypeError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// Thrown by parse(). what() says what is wrong and where ("... at byte N");
// `offset` is that byte offset into the text (at most text.size()).
struct ParseError : std::runtime_error {
  ParseError(const std::string& what, size_t at);
  size_t offset;
};

// Bounds on what parse() accepts; exceeding one is a ParseError.
struct Limits {
  size_t max_depth = 64;            // nested arrays/objects
  size_t max_bytes = 64 << 20;      // size of the text
  size_t max_string = 1 << 20;      // bytes of one decoded string or key
  size_t max_elements = 1 << 22;    // values of any type in the document
};

class Value {
 public:
  using Array = std::vector<Value>;
  using Object = std::vector<std::pair<std::string, Value>>;

  Value() noexcept : type_(Type::kNull) { u_.i = 0; }  // null
  Value(const Value& other);
  Value(Value&& other) noexcept;
  Value& operator=(const Value& other);
  Value& operator=(Value&& other) noexcept;
  ~Value();

  Type type() const { return type_; }
  bool is_null() const { return type_ == Type::kNull; }
  bool is_bool() const { return type_ == Type::kBool; }
  bool is_number() const { return type_ == Type::kNumber; }
  bool is_string() const { return type_ == Type::kString; }
  bool is_array() const { return type_ == Type::kArray; }
  bool is_object() const { return type_ == Type::kObject; }

  // The accessors throw TypeError when the value has another type.
  bool as_bool() const;
  double as_double() const;  // nearest double (correctly rounded)
  // A number whose exact decimal value is an int64: "3", "-0", "3.0" and
  // "3e2" are; "3.5", "1e-1" and "9223372036854775808" are not.
  bool is_integer() const { return type_ == Type::kNumber && (flags_ & kInteger); }
  int64_t as_int() const;  // throws TypeError unless is_integer()
  const std::string& as_string() const;
  const Array& as_array() const;
  const Object& as_object() const;  // members in file order

  // The member named `key`, or nullptr (also when this is not an object).
  // A linear scan: iterate as_object() to visit every member of a big object.
  const Value* find(std::string_view key) const;
  // Number of elements of an array or members of an object, else 0.
  size_t size() const;

 private:
  friend class Parser;
  enum : uint8_t { kInteger = 1, kNegativeZero = 2 };

  void destroy() noexcept;

  Type type_;
  uint8_t flags_ = 0;
  // Empty strings, arrays and objects keep a null pointer, so "[[],[],...]"
  // costs no allocation per element.
  union {
    bool b;
    double d;
    int64_t i;  // when flags_ & kInteger
    std::string* s;
    Array* a;
    Object* o;
  } u_;
};

// Parses one JSON document. Throws ParseError (never crashes) on anything
// that is not strict RFC 8259 JSON or exceeds `limits`; may throw
// std::bad_alloc.
Value parse(std::string_view text, const Limits& limits = {});

}  // namespace json
}  // namespace onebit
