// Number and date/time pictures. The algorithms follow the XPath and XQuery
// Functions and Operators 3.1 rules as the JSONata reference implementation
// applies them (including its error codes D3080-D3093, D3110, D3130-D3136).
#include "common/jsonata/datetime.h"

#include <cmath>
#include <cstdio>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/civil_time.h"
#include "absl/time/time.h"
#include "common/json/utf8.h"
#include "common/jsonata/regex.h"

namespace stepflow::jsonata {
namespace {

std::u32string U32(absl::string_view s) {
  std::u32string out;
  size_t i = 0;
  while (i < s.size()) out.push_back(json::NextCodePoint(s, &i));
  return out;
}

std::string U8(const std::u32string& s) {
  std::string out;
  for (char32_t c : s) json::AppendUtf8(c, &out);
  return out;
}

bool Contains(const std::u32string& s, char32_t c) {
  return s.find(c) != std::u32string::npos;
}

// JavaScript Number.prototype.toFixed for the values formatNumber produces.
std::string ToFixed(double v, int dp) {
  char buf[512];
  std::snprintf(buf, sizeof(buf), "%.*f", dp, v);
  return buf;
}

}  // namespace

Val FormatNumberPicture(double value, const Val& picture_val,
                        const Val& options) {
  std::u32string decimal_sep = U"." , grouping_sep = U",", exponent_sep = U"e",
                 minus_sign = U"-", percent = U"%", per_mille = U"\u2030",
                 zero_digit = U"0", digit = U"#", pattern_sep = U";";
  if (options && IsObject(options)) {
    ForEachMember(options, [&](const std::string& k, const Val& v) {
      if (!IsString(v)) return;
      std::u32string s = U32(v->str);
      if (k == "decimal-separator") decimal_sep = s;
      else if (k == "grouping-separator") grouping_sep = s;
      else if (k == "exponent-separator") exponent_sep = s;
      else if (k == "minus-sign") minus_sign = s;
      else if (k == "percent") percent = s;
      else if (k == "per-mille") per_mille = s;
      else if (k == "zero-digit") zero_digit = s;
      else if (k == "digit") digit = s;
      else if (k == "pattern-separator") pattern_sep = s;
    });
  }
  auto ch = [](const std::u32string& s) -> char32_t { return s.empty() ? 0 : s[0]; };
  std::u32string family;
  for (char32_t c = ch(zero_digit); c < ch(zero_digit) + 10; ++c) family += c;
  std::u32string active = family;
  active += ch(decimal_sep);
  active += ch(exponent_sep);
  active += ch(grouping_sep);
  active += ch(digit);
  active += ch(pattern_sep);

  std::u32string picture = U32(picture_val ? picture_val->str : "");
  std::vector<std::u32string> subs;
  {
    size_t start = 0;
    for (;;) {
      size_t p = picture.find(ch(pattern_sep), start);
      if (p == std::u32string::npos) {
        subs.push_back(picture.substr(start));
        break;
      }
      subs.push_back(picture.substr(start, p - start));
      start = p + 1;
    }
  }
  if (subs.size() > 2) throw Error("D3080");

  struct Parts {
    std::u32string prefix, suffix, active, mantissa, integer, fractional, sub;
    bool has_exponent = false;
    std::u32string exponent;
  };
  auto is_active = [&](char32_t c) { return Contains(active, c); };
  auto is_family = [&](char32_t c) { return Contains(family, c); };
  auto split_parts = [&](const std::u32string& sub) {
    Parts p;
    p.sub = sub;
    for (size_t i = 0; i < sub.size(); ++i) {
      if (is_active(sub[i]) && sub[i] != ch(exponent_sep)) {
        p.prefix = sub.substr(0, i);
        break;
      }
    }
    for (size_t i = sub.size(); i-- > 0;) {
      if (is_active(sub[i]) && sub[i] != ch(exponent_sep)) {
        p.suffix = sub.substr(i + 1);
        break;
      }
    }
    p.active = sub.substr(p.prefix.size(), sub.size() - p.prefix.size() - p.suffix.size());
    size_t exp_pos = sub.find(ch(exponent_sep), p.prefix.size());
    if (exp_pos == std::u32string::npos || exp_pos > sub.size() - p.suffix.size()) {
      p.mantissa = p.active;
    } else {
      p.mantissa = p.active.substr(0, exp_pos);
      p.exponent = p.active.substr(std::min(exp_pos + 1, p.active.size()));
      p.has_exponent = true;
    }
    size_t dec = p.mantissa.find(ch(decimal_sep));
    if (dec == std::u32string::npos) {
      p.integer = p.mantissa;
      p.fractional = p.suffix;
    } else {
      p.integer = p.mantissa.substr(0, dec);
      p.fractional = p.mantissa.substr(dec + 1);
    }
    return p;
  };
  auto validate = [&](const Parts& p) {
    const char* error = nullptr;
    const std::u32string& s = p.sub;
    size_t dec = s.find(ch(decimal_sep));
    if (dec != s.rfind(ch(decimal_sep))) error = "D3081";
    if (s.find(ch(percent)) != s.rfind(ch(percent))) error = "D3082";
    if (s.find(ch(per_mille)) != s.rfind(ch(per_mille))) error = "D3083";
    if (Contains(s, ch(percent)) && Contains(s, ch(per_mille))) error = "D3084";
    bool valid = false;
    for (char32_t c : p.mantissa) {
      if (is_family(c) || c == ch(digit)) {
        valid = true;
        break;
      }
    }
    if (!valid) error = "D3085";
    for (char32_t c : p.active) {
      if (!is_active(c)) error = "D3086";
    }
    if (dec != std::u32string::npos) {
      if ((dec > 0 && s[dec - 1] == ch(grouping_sep)) ||
          (dec + 1 < s.size() && s[dec + 1] == ch(grouping_sep))) {
        error = "D3087";
      }
    } else if (!p.integer.empty() && p.integer.back() == ch(grouping_sep)) {
      error = "D3088";
    }
    std::u32string gg;
    gg += ch(grouping_sep);
    gg += ch(grouping_sep);
    if (s.find(gg) != std::u32string::npos) error = "D3089";
    size_t opt = p.integer.find(ch(digit));
    if (opt != std::u32string::npos) {
      for (size_t i = 0; i < opt; ++i) {
        if (is_family(p.integer[i])) error = "D3090";
      }
    }
    opt = p.fractional.rfind(ch(digit));
    if (opt != std::u32string::npos) {
      for (size_t i = opt; i < p.fractional.size(); ++i) {
        if (is_family(p.fractional[i])) error = "D3091";
      }
    }
    if (p.has_exponent && !p.exponent.empty() &&
        (Contains(s, ch(percent)) || Contains(s, ch(per_mille)))) {
      error = "D3092";
    }
    if (p.has_exponent) {
      bool bad = p.exponent.empty();
      for (char32_t c : p.exponent) {
        if (!is_family(c)) bad = true;
      }
      if (bad) error = "D3093";
    }
    if (error) throw Error(error);
  };
  struct Vars {
    std::vector<int> integer_groups;
    int regular = 0;
    int min_int = 0, scaling = 0;
    std::u32string prefix, suffix, picture;
    std::vector<int> fraction_groups;
    int min_frac = 0, max_frac = 0, min_exp = 0;
  };
  auto analyse = [&](const Parts& p) {
    Vars v;
    auto grouping_positions = [&](const std::u32string& part, bool to_left) {
      std::vector<int> positions;
      size_t pos = part.find(ch(grouping_sep));
      while (pos != std::u32string::npos) {
        std::u32string side = to_left ? part.substr(0, pos) : part.substr(pos);
        int n = 0;
        for (char32_t c : side) {
          if (is_family(c) || c == ch(digit)) ++n;
        }
        positions.push_back(n);
        pos = p.integer.find(ch(grouping_sep), pos + 1);
      }
      return positions;
    };
    v.integer_groups = grouping_positions(p.integer, false);
    if (!v.integer_groups.empty()) {
      auto gcd = [](int a, int b) {
        while (b != 0) {
          int t = a % b;
          a = b;
          b = t;
        }
        return a;
      };
      int factor = v.integer_groups[0];
      for (size_t i = 1; i < v.integer_groups.size(); ++i) {
        factor = gcd(factor, v.integer_groups[i]);
      }
      int regular = factor;
      for (size_t i = 1; i <= v.integer_groups.size(); ++i) {
        if (std::find(v.integer_groups.begin(), v.integer_groups.end(),
                      static_cast<int>(i) * factor) == v.integer_groups.end()) {
          regular = 0;
          break;
        }
      }
      v.regular = regular;
    }
    v.fraction_groups = grouping_positions(p.fractional, true);
    for (char32_t c : p.integer) v.min_int += is_family(c) ? 1 : 0;
    v.scaling = v.min_int;
    for (char32_t c : p.fractional) {
      if (is_family(c)) ++v.min_frac;
      if (is_family(c) || c == ch(digit)) ++v.max_frac;
    }
    if (v.min_int == 0 && v.max_frac == 0) {
      if (p.has_exponent) {
        v.min_frac = 1;
        v.max_frac = 1;
      } else {
        v.min_int = 1;
      }
    }
    if (p.has_exponent && v.min_int == 0 && Contains(p.integer, ch(digit))) {
      v.min_int = 1;
    }
    if (v.min_int == 0 && v.min_frac == 0) v.min_frac = 1;
    if (p.has_exponent) {
      for (char32_t c : p.exponent) v.min_exp += is_family(c) ? 1 : 0;
    }
    v.prefix = p.prefix;
    v.suffix = p.suffix;
    v.picture = p.sub;
    return v;
  };
  std::vector<Parts> parts;
  for (auto& s : subs) parts.push_back(split_parts(s));
  for (auto& p : parts) validate(p);
  std::vector<Vars> vars;
  for (auto& p : parts) vars.push_back(analyse(p));
  if (vars.size() == 1) {
    vars.push_back(vars[0]);
    vars[1].prefix = minus_sign + vars[1].prefix;
  }
  Vars& pic = value >= 0 ? vars[0] : vars[1];
  double adjusted = value;
  if (Contains(pic.picture, ch(percent))) adjusted = value * 100;
  else if (Contains(pic.picture, ch(per_mille))) adjusted = value * 1000;
  double mantissa = adjusted;
  bool has_exp = false;
  int exponent = 0;
  if (pic.min_exp != 0) {
    has_exp = true;
    double max_m = std::pow(10, pic.scaling), min_m = std::pow(10, pic.scaling - 1);
    if (mantissa != 0) {
      while (std::fabs(mantissa) < min_m) {
        mantissa *= 10;
        exponent -= 1;
      }
      while (std::fabs(mantissa) > max_m) {
        mantissa /= 10;
        exponent += 1;
      }
    }
  }
  double rounded = RoundHalfEven(mantissa, pic.max_frac);
  auto make_string = [&](double v, int dp) {
    std::string s = ToFixed(std::fabs(v), dp);
    std::u32string out;
    for (char c : s) {
      if (c >= '0' && c <= '9') out += static_cast<char32_t>(ch(zero_digit) + (c - '0'));
      else out += static_cast<char32_t>(c);
    }
    return out;
  };
  std::u32string sv = make_string(rounded, pic.max_frac);
  size_t dp = sv.find(U'.');
  if (dp == std::u32string::npos) {
    sv += ch(decimal_sep);
  } else {
    sv[dp] = ch(decimal_sep);
  }
  while (!sv.empty() && sv[0] == ch(zero_digit)) sv.erase(0, 1);
  while (!sv.empty() && sv.back() == ch(zero_digit)) sv.pop_back();
  long dpos = static_cast<long>(sv.find(ch(decimal_sep)));
  long pad_left = pic.min_int - dpos;
  long pad_right = pic.min_frac - (static_cast<long>(sv.size()) - dpos - 1);
  if (pad_left > 0) sv = std::u32string(pad_left, ch(zero_digit)) + sv;
  if (pad_right > 0) sv += std::u32string(pad_right, ch(zero_digit));
  dpos = static_cast<long>(sv.find(ch(decimal_sep)));
  if (pic.regular > 0) {
    long groups = (dpos - 1) / pic.regular;
    if (dpos - 1 < 0) groups = 0;
    for (long g = 1; g <= groups; ++g) {
      sv.insert(static_cast<size_t>(dpos - g * pic.regular), 1, ch(grouping_sep));
    }
  } else {
    for (int pos : pic.integer_groups) {
      long at = dpos - pos;
      if (at < 0) at = 0;
      sv.insert(static_cast<size_t>(at), 1, ch(grouping_sep));
      ++dpos;
    }
  }
  dpos = static_cast<long>(sv.find(ch(decimal_sep)));
  for (int pos : pic.fraction_groups) {
    size_t at = static_cast<size_t>(pos + dpos + 1);
    if (at > sv.size()) at = sv.size();
    sv.insert(at, 1, ch(grouping_sep));
  }
  dpos = static_cast<long>(sv.find(ch(decimal_sep)));
  if (!Contains(pic.picture, ch(decimal_sep)) ||
      dpos == static_cast<long>(sv.size()) - 1) {
    sv.pop_back();
  }
  if (has_exp) {
    std::u32string se = make_string(exponent, 0);
    long pl = pic.min_exp - static_cast<long>(se.size());
    if (pl > 0) se = std::u32string(pl, ch(zero_digit)) + se;
    sv += ch(exponent_sep);
    if (exponent < 0) sv += minus_sign;
    sv += se;
  }
  return MakeString(U8(pic.prefix + sv + pic.suffix));
}

}  // namespace stepflow::jsonata

// ------------------------------------------------------------ integer pictures

namespace stepflow::jsonata {
namespace {

const char* const kFew[] = {
    "Zero", "One", "Two", "Three", "Four", "Five", "Six", "Seven", "Eight",
    "Nine", "Ten", "Eleven", "Twelve", "Thirteen", "Fourteen", "Fifteen",
    "Sixteen", "Seventeen", "Eighteen", "Nineteen"};
const char* const kOrdinals[] = {
    "Zeroth", "First", "Second", "Third", "Fourth", "Fifth", "Sixth",
    "Seventh", "Eighth", "Ninth", "Tenth", "Eleventh", "Twelfth",
    "Thirteenth", "Fourteenth", "Fifteenth", "Sixteenth", "Seventeenth",
    "Eighteenth", "Nineteenth"};
const char* const kDecades[] = {"Twenty", "Thirty", "Forty", "Fifty", "Sixty",
                                "Seventy", "Eighty", "Ninety", "Hundred"};
const char* const kMagnitudes[] = {"Thousand", "Million", "Billion",
                                   "Trillion"};
const char* const kDays[] = {"", "Monday", "Tuesday", "Wednesday",
                             "Thursday", "Friday", "Saturday", "Sunday"};
const char* const kMonths[] = {"January", "February", "March", "April",
                               "May", "June", "July", "August",
                               "September", "October", "November",
                               "December"};

std::string Lower(std::string s) {
  for (char& c : s) c = static_cast<char>(tolower(static_cast<unsigned char>(c)));
  return s;
}
std::string Upper(std::string s) {
  for (char& c : s) c = static_cast<char>(toupper(static_cast<unsigned char>(c)));
  return s;
}

std::string NumberToWords(double num, bool prev, bool ord) {
  std::string words;
  if (num <= 19) {
    int n = static_cast<int>(num);
    words = std::string(prev ? " and " : "") + (ord ? kOrdinals[n] : kFew[n]);
  } else if (num < 100) {
    int tens = static_cast<int>(num / 10);
    int remainder = static_cast<int>(std::fmod(num, 10));
    words = std::string(prev ? " and " : "") + kDecades[tens - 2];
    if (remainder > 0) {
      words += "-" + NumberToWords(remainder, false, ord);
    } else if (ord) {
      words = words.substr(0, words.size() - 1) + "ieth";
    }
  } else if (num < 1000) {
    int hundreds = static_cast<int>(num / 100);
    double remainder = std::fmod(num, 100);
    words = std::string(prev ? ", " : "") + kFew[hundreds] + " Hundred";
    if (remainder > 0) {
      words += NumberToWords(remainder, true, ord);
    } else if (ord) {
      words += "th";
    }
  } else {
    int mag = static_cast<int>(std::floor(std::log10(num) / 3));
    if (mag > 4) mag = 4;
    double factor = std::pow(10, mag * 3);
    double mant = std::floor(num / factor);
    double remainder = num - mant * factor;
    words = std::string(prev ? ", " : "") + NumberToWords(mant, false, false) +
            " " + kMagnitudes[mag - 1];
    if (remainder > 0) {
      words += NumberToWords(remainder, true, ord);
    } else if (ord) {
      words += "th";
    }
  }
  return words;
}

// Word -> value, in the order the reference implementation builds its table
// (the order matters for the alternation in parsing regexes).
const std::vector<std::pair<std::string, double>>& WordValues() {
  static const auto* const kValues = [] {
    auto* v = new std::vector<std::pair<std::string, double>>();
    auto add = [&](const std::string& w, double d) {
      for (auto& [k, val] : *v) {
        if (k == w) {
          val = d;
          return;
        }
      }
      v->emplace_back(w, d);
    };
    for (int i = 0; i < 20; ++i) add(Lower(kFew[i]), i);
    for (int i = 0; i < 20; ++i) add(Lower(kOrdinals[i]), i);
    for (int i = 0; i < 9; ++i) {
      std::string w = Lower(kDecades[i]);
      add(w, (i + 2) * 10);
      add(w.substr(0, w.size() - 1) + "ieth", (i + 2) * 10);
    }
    add("hundredth", 100);
    for (int i = 0; i < 4; ++i) {
      std::string w = Lower(kMagnitudes[i]);
      add(w, std::pow(10, (i + 1) * 3));
      add(w + "th", std::pow(10, (i + 1) * 3));
    }
    return v;
  }();
  return *kValues;
}

double WordsToNumber(const std::string& text) {
  static const CompiledRegex* const kSeparator =
      CompiledRegex::Compile(",\\s|\\sand\\s|[\\s\\\\-]", {})->release();
  // The words between separators, as JavaScript's String.split gives them.
  std::vector<std::string> parts;
  size_t from = 0;
  RegexMatch separator;
  while (kSeparator->Search(text, from, &separator).value_or(false)) {
    parts.push_back(text.substr(from, separator.start - from));
    from = separator.end;
  }
  parts.push_back(text.substr(from));
  std::vector<double> segs{0};
  for (const std::string& part : parts) {
    double value = NAN;
    for (const auto& [k, v] : WordValues()) {
      if (k == part) value = v;
    }
    if (value < 100) {
      double top = segs.back();
      segs.pop_back();
      if (top >= 1000) {
        segs.push_back(top);
        top = 0;
      }
      segs.push_back(top + value);
    } else {
      double top = segs.back();
      segs.pop_back();
      segs.push_back(top * value);
    }
  }
  double sum = 0;
  for (double d : segs) sum += d;
  return sum;
}

std::string DecimalToRoman(double value) {
  static const std::pair<int, const char*> kNumerals[] = {
      {1000, "m"}, {900, "cm"}, {500, "d"}, {400, "cd"}, {100, "c"},
      {90, "xc"},  {50, "l"},   {40, "xl"}, {10, "x"},   {9, "ix"},
      {5, "v"},    {4, "iv"},   {1, "i"}};
  std::string out;
  while (value >= 1) {
    for (const auto& [n, s] : kNumerals) {
      if (value >= n) {
        out += s;
        value -= n;
        break;
      }
    }
  }
  return out;
}

double RomanToDecimal(const std::string& roman) {
  auto val = [](char c) {
    switch (c) {
      case 'M': return 1000; case 'D': return 500; case 'C': return 100;
      case 'L': return 50; case 'X': return 10; case 'V': return 5;
      case 'I': return 1;
    }
    return 0;
  };
  double decimal = 0;
  int max = 1;
  for (size_t i = roman.size(); i-- > 0;) {
    int v = val(roman[i]);
    if (v < max) {
      decimal -= v;
    } else {
      max = v;
      decimal += v;
    }
  }
  return decimal;
}

std::string DecimalToLetters(double value, char a) {
  std::string letters;
  while (value > 0) {
    letters.insert(letters.begin(),
                   static_cast<char>(std::fmod(value - 1, 26) + a));
    value = std::floor((value - 1) / 26);
  }
  return letters;
}

double LettersToDecimal(const std::string& letters, char a) {
  double decimal = 0;
  for (size_t i = 0; i < letters.size(); ++i) {
    decimal += (letters[letters.size() - i - 1] - a + 1) * std::pow(26, i);
  }
  return decimal;
}

enum class Primary { kDecimal, kLetters, kRoman, kWords, kSequence };
enum class Case { kUpper, kLower, kTitle };

struct Separator {
  int position = 0;
  char32_t character = 0;
};

struct IntegerFormat {
  Primary primary = Primary::kDecimal;
  Case letter_case = Case::kLower;
  bool ordinal = false;
  char32_t zero_code = U'0';
  int mandatory_digits = 0;
  int optional_digits = 0;
  bool regular = false;
  std::vector<Separator> separators;  // regular: one entry (position = step)
  std::string token;
  int parse_width = 0;
};

const char32_t kDecimalGroups[] = {
    0x30,   0x0660, 0x06F0, 0x07C0, 0x0966, 0x09E6, 0x0A66, 0x0AE6,
    0x0B66, 0x0BE6, 0x0C66, 0x0CE6, 0x0D66, 0x0DE6, 0x0E50, 0x0ED0,
    0x0F20, 0x1040, 0x1090, 0x17E0, 0x1810, 0x1946, 0x19D0, 0x1A80,
    0x1A90, 0x1B50, 0x1BB0, 0x1C40, 0x1C50, 0xA620, 0xA8D0, 0xA900,
    0xA9D0, 0xA9F0, 0xAA50, 0xABF0, 0xFF10};

IntegerFormat AnalyseIntegerPicture(const std::string& picture) {
  IntegerFormat format;
  std::string primary = picture;
  size_t semicolon = picture.rfind(';');
  if (semicolon != std::string::npos) {
    primary = picture.substr(0, semicolon);
    std::string modifier = picture.substr(semicolon + 1);
    if (!modifier.empty() && modifier[0] == 'o') format.ordinal = true;
  }
  if (primary == "A" || primary == "a") {
    if (primary == "A") format.letter_case = Case::kUpper;
    format.primary = Primary::kLetters;
  } else if (primary == "I" || primary == "i") {
    if (primary == "I") format.letter_case = Case::kUpper;
    format.primary = Primary::kRoman;
  } else if (primary == "W") {
    format.letter_case = Case::kUpper;
    format.primary = Primary::kWords;
  } else if (primary == "Ww") {
    format.letter_case = Case::kTitle;
    format.primary = Primary::kWords;
  } else if (primary == "w") {
    format.primary = Primary::kWords;
  } else {
    bool have_zero = false;
    char32_t zero = 0;
    int mandatory = 0, optional = 0, position = 0;
    std::vector<Separator> separators;
    std::u32string cps = U32(primary);
    for (auto it = cps.rbegin(); it != cps.rend(); ++it) {
      char32_t cp = *it;
      bool digit = false;
      for (char32_t group : kDecimalGroups) {
        if (cp >= group && cp <= group + 9) {
          digit = true;
          ++mandatory;
          ++position;
          if (!have_zero) {
            zero = group;
            have_zero = true;
          } else if (group != zero) {
            throw Error("D3131");
          }
          break;
        }
      }
      if (!digit) {
        if (cp == U'#') {
          ++position;
          ++optional;
        } else {
          separators.push_back({position, cp});
        }
      }
    }
    if (mandatory > 0) {
      format.primary = Primary::kDecimal;
      format.zero_code = zero;
      format.mandatory_digits = mandatory;
      format.optional_digits = optional;
      int regular = 0;
      if (!separators.empty()) {
        bool same = true;
        for (const auto& s : separators) {
          if (s.character != separators[0].character) same = false;
        }
        if (same) {
          auto gcd = [](int a, int b) {
            while (b != 0) {
              int t = a % b;
              a = b;
              b = t;
            }
            return a;
          };
          int factor = separators[0].position;
          for (size_t i = 1; i < separators.size(); ++i) {
            factor = gcd(factor, separators[i].position);
          }
          regular = factor;
          for (size_t i = 1; i <= separators.size(); ++i) {
            bool found = false;
            for (const auto& s : separators) {
              if (s.position == static_cast<int>(i) * factor) found = true;
            }
            if (!found) {
              regular = 0;
              break;
            }
          }
        }
      }
      if (regular > 0) {
        format.regular = true;
        format.separators = {{regular, separators[0].character}};
      } else {
        format.regular = false;
        format.separators = separators;
      }
    } else {
      format.primary = Primary::kSequence;
      format.token = primary;
    }
  }
  return format;
}

std::string FormatInteger(double value, const IntegerFormat& format) {
  std::string out;
  bool negative = value < 0;
  value = std::fabs(value);
  switch (format.primary) {
    case Primary::kLetters:
      out = DecimalToLetters(value, format.letter_case == Case::kUpper ? 'A' : 'a');
      break;
    case Primary::kRoman:
      out = DecimalToRoman(value);
      if (format.letter_case == Case::kUpper) out = Upper(out);
      break;
    case Primary::kWords:
      out = NumberToWords(value, false, format.ordinal);
      if (format.letter_case == Case::kUpper) out = Upper(out);
      else if (format.letter_case == Case::kLower) out = Lower(out);
      break;
    case Primary::kDecimal: {
      std::u32string s = U32(NumberToString(value));
      int pad = format.mandatory_digits - static_cast<int>(s.size());
      if (pad > 0) s = std::u32string(pad, U'0') + s;
      if (format.zero_code != U'0') {
        for (char32_t& c : s) c = c + format.zero_code - U'0';
      }
      if (format.regular) {
        int step = format.separators[0].position;
        int n = (static_cast<int>(s.size()) - 1) / step;
        for (int ii = n; ii > 0; --ii) {
          size_t pos = s.size() - static_cast<size_t>(ii * step);
          s.insert(pos, 1, format.separators[0].character);
        }
      } else {
        for (auto it = format.separators.rbegin(); it != format.separators.rend(); ++it) {
          long pos = static_cast<long>(s.size()) - it->position;
          if (pos < 0) pos = 0;
          s.insert(static_cast<size_t>(pos), 1, it->character);
        }
      }
      out = U8(s);
      if (format.ordinal) {
        char last = out.empty() ? '0' : out.back();
        const char* suffix = last == '1' ? "st" : last == '2' ? "nd" : last == '3' ? "rd" : nullptr;
        if (!suffix || (out.size() > 1 && out[out.size() - 2] == '1')) suffix = "th";
        out += suffix;
      }
      break;
    }
    case Primary::kSequence:
      throw Error("D3130").WithValue(MakeString(format.token));
  }
  if (negative) out = "-" + out;
  return out;
}

// ------------------------------------------------------------ date/time

struct Marker {
  bool literal = false;
  std::string value;  // literal text
  char component = 0;
  bool has_width = false;
  bool has_min = false, has_max = false;
  int min = 0, max = 0;
  std::string presentation1;
  char presentation2 = 0;
  bool ordinal = false;
  bool has_names = false;
  Case names = Case::kLower;
  bool has_integer = false;
  IntegerFormat integer;
  int n = -1;
};

int ParseIntPrefix(const std::string& s, bool* ok) {
  size_t i = 0;
  while (i < s.size() && isspace(static_cast<unsigned char>(s[i]))) ++i;
  bool neg = false;
  if (i < s.size() && (s[i] == '-' || s[i] == '+')) neg = s[i++] == '-';
  size_t start = i;
  long v = 0;
  while (i < s.size() && isdigit(static_cast<unsigned char>(s[i]))) v = v * 10 + (s[i++] - '0');
  *ok = i > start;
  return static_cast<int>(neg ? -v : v);
}

std::vector<Marker> AnalyseDateTimePicture(const std::string& picture) {
  std::vector<Marker> spec;
  auto add_literal = [&](size_t start, size_t end) {
    if (end > start) {
      std::string lit = picture.substr(start, end - start);
      std::string out;
      for (size_t i = 0; i < lit.size(); ++i) {
        if (lit.compare(i, 2, "]]") == 0) {
          out += ']';
          ++i;
        } else {
          out += lit[i];
        }
      }
      Marker m;
      m.literal = true;
      m.value = out;
      spec.push_back(m);
    }
  };
  size_t start = 0, pos = 0;
  while (pos < picture.size()) {
    if (picture[pos] == '[') {
      if (pos + 1 < picture.size() && picture[pos + 1] == '[') {
        add_literal(start, pos);
        Marker m;
        m.literal = true;
        m.value = "[";
        spec.push_back(m);
        pos += 2;
        start = pos;
        continue;
      }
      add_literal(start, pos);
      start = pos;
      pos = picture.find(']', start);
      if (pos == std::string::npos) throw Error("D3135");
      std::string marker;
      for (char c : picture.substr(start + 1, pos - start - 1)) {
        if (!isspace(static_cast<unsigned char>(c))) marker += c;
      }
      Marker def;
      def.component = marker.empty() ? 0 : marker[0];
      size_t comma = marker.rfind(',');
      std::string pres;
      if (comma != std::string::npos) {
        std::string width = marker.substr(comma + 1);
        size_t dash = width.find('-');
        std::string mn = dash == std::string::npos ? width : width.substr(0, dash);
        def.has_width = true;
        bool ok = false;
        if (mn != "*") {
          def.min = ParseIntPrefix(mn, &ok);
          def.has_min = ok;
        }
        if (dash != std::string::npos) {
          std::string mx = width.substr(dash + 1);
          if (mx != "*") {
            def.max = ParseIntPrefix(mx, &ok);
            def.has_max = ok;
          }
        }
        pres = marker.substr(1, comma - 1);
      } else {
        pres = marker.size() > 1 ? marker.substr(1) : "";
      }
      if (pres.size() == 1) {
        def.presentation1 = pres;
      } else if (pres.size() > 1) {
        char last = pres.back();
        if (std::string("atco").find(last) != std::string::npos) {
          def.presentation2 = last;
          if (last == 'o') def.ordinal = true;
          def.presentation1 = pres.substr(0, pres.size() - 1);
        } else {
          def.presentation1 = pres;
        }
      } else {
        static const std::map<char, std::string> kDefaults = {
            {'Y', "1"}, {'M', "1"}, {'D', "1"}, {'d', "1"}, {'F', "n"},
            {'W', "1"}, {'w', "1"}, {'X', "1"}, {'x', "1"}, {'H', "1"},
            {'h', "1"}, {'P', "n"}, {'m', "01"}, {'s', "01"}, {'f', "1"},
            {'Z', "01:01"}, {'z', "01:01"}, {'C', "n"}, {'E', "n"}};
        auto it = kDefaults.find(def.component);
        if (it == kDefaults.end()) {
          throw Error("D3132").WithValue(MakeString(std::string(1, def.component)));
        }
        def.presentation1 = it->second;
      }
      if (def.presentation1[0] == 'n') {
        def.has_names = true;
        def.names = Case::kLower;
      } else if (def.presentation1[0] == 'N') {
        def.has_names = true;
        def.names = def.presentation1.size() > 1 && def.presentation1[1] == 'n'
                        ? Case::kTitle
                        : Case::kUpper;
      } else if (std::string("YMDdFWwXxHhmsf").find(def.component) != std::string::npos) {
        std::string pattern = def.presentation1;
        if (def.presentation2) pattern += std::string(";") + def.presentation2;
        def.integer = AnalyseIntegerPicture(pattern);
        def.has_integer = true;
        if (def.has_width && def.has_min && def.integer.mandatory_digits < def.min) {
          def.integer.mandatory_digits = def.min;
        }
        if (def.component == 'Y') {
          def.n = -1;
          if (def.has_width && def.has_max) {
            def.n = def.max;
            def.integer.mandatory_digits = def.n;
          } else {
            int w = def.integer.mandatory_digits + def.integer.optional_digits;
            if (w >= 2) def.n = w;
          }
        }
        if (!spec.empty() && spec.back().has_integer) {
          spec.back().integer.parse_width = spec.back().integer.mandatory_digits;
        }
      }
      if (def.component == 'Z' || def.component == 'z') {
        def.integer = AnalyseIntegerPicture(def.presentation1);
        def.has_integer = true;
      }
      spec.push_back(def);
      start = pos + 1;
    }
    ++pos;
  }
  add_literal(start, pos);
  return spec;
}

constexpr double kMillisInDay = 86400000.0;

double DateUtc(double y, double m, double d = 1, double h = 0, double mi = 0,
               double s = 0, double ms = 0) {
  absl::CivilSecond cs(static_cast<int64_t>(y), static_cast<int>(m) + 1, 1, 0, 0, 0);
  double base = static_cast<double>(
      absl::ToUnixMillis(absl::FromCivil(cs, absl::UTCTimeZone())));
  return base + (d - 1) * kMillisInDay + h * 3600000.0 + mi * 60000.0 +
         s * 1000.0 + ms;
}

struct Parts {
  int64_t year;
  int month;  // 0-based
  int day, hour, minute, second, millis, weekday;  // weekday 0 = Sunday
};

Parts Split(double millis) {
  double days = std::floor(millis / kMillisInDay);
  double rem = millis - days * kMillisInDay;
  absl::CivilDay cd = absl::CivilDay(1970, 1, 1) + static_cast<int64_t>(days);
  Parts p;
  p.year = cd.year();
  p.month = cd.month() - 1;
  p.day = cd.day();
  int64_t r = static_cast<int64_t>(rem);
  p.hour = static_cast<int>(r / 3600000);
  p.minute = static_cast<int>(r / 60000 % 60);
  p.second = static_cast<int>(r / 1000 % 60);
  p.millis = static_cast<int>(r % 1000);
  int wd = static_cast<int>(absl::GetWeekday(cd));  // Monday = 0
  p.weekday = (wd + 1) % 7;
  return p;
}

double StartOfFirstWeek(int64_t year, int month) {
  double jan1 = DateUtc(static_cast<double>(year), month);
  int day = Split(jan1).weekday;
  if (day == 0) day = 7;
  return day > 4 ? jan1 + (8 - day) * kMillisInDay : jan1 - (day - 1) * kMillisInDay;
}

double DeltaWeeks(double start, double end) {
  return (end - start) / (kMillisInDay * 7) + 1;
}

// Component value as a number (or name text in `text` for P/C/E).
double Fragment(double millis, char component, std::string* text) {
  Parts p = Split(millis);
  switch (component) {
    case 'Y': return static_cast<double>(p.year);
    case 'M': return p.month + 1;
    case 'D': return p.day;
    case 'd': {
      double today = DateUtc(static_cast<double>(p.year), p.month, p.day);
      double first = DateUtc(static_cast<double>(p.year), 0);
      return (today - first) / kMillisInDay + 1;
    }
    case 'F': return p.weekday == 0 ? 7 : p.weekday;
    case 'W': {
      double start = StartOfFirstWeek(p.year, 0);
      double today = DateUtc(static_cast<double>(p.year), p.month, p.day);
      double week = DeltaWeeks(start, today);
      if (week > 52) {
        if (today >= StartOfFirstWeek(p.year + 1, 0)) week = 1;
      } else if (week < 1) {
        week = DeltaWeeks(StartOfFirstWeek(p.year - 1, 0), today);
      }
      return std::floor(week);
    }
    case 'w': {
      double start = StartOfFirstWeek(p.year, p.month);
      double today = DateUtc(static_cast<double>(p.year), p.month, p.day);
      double week = DeltaWeeks(start, today);
      if (week > 4) {
        int64_t ny = p.month == 11 ? p.year + 1 : p.year;
        int nm = p.month == 11 ? 0 : p.month + 1;
        if (today >= StartOfFirstWeek(ny, nm)) week = 1;
      } else if (week < 1) {
        int64_t py = p.month == 0 ? p.year - 1 : p.year;
        int pm = p.month == 0 ? 11 : p.month - 1;
        week = DeltaWeeks(StartOfFirstWeek(py, pm), today);
      }
      return std::floor(week);
    }
    case 'X': {
      double start = StartOfFirstWeek(p.year, 0);
      double end = StartOfFirstWeek(p.year + 1, 0);
      if (millis < start) return static_cast<double>(p.year - 1);
      if (millis >= end) return static_cast<double>(p.year + 1);
      return static_cast<double>(p.year);
    }
    case 'x': {
      double start = StartOfFirstWeek(p.year, p.month);
      int64_t ny = p.month == 11 ? p.year + 1 : p.year;
      int nm = p.month == 11 ? 0 : p.month + 1;
      double end = StartOfFirstWeek(ny, nm);
      if (millis < start) return (p.month == 0 ? 11 : p.month - 1) + 1;
      if (millis >= end) return nm + 1;
      return p.month + 1;
    }
    case 'H': return p.hour;
    case 'h': {
      int h = p.hour % 12;
      return h == 0 ? 12 : h;
    }
    case 'P':
      if (text) *text = p.hour >= 12 ? "pm" : "am";
      return 0;
    case 'm': return p.minute;
    case 's': return p.second;
    case 'f': return p.millis;
    case 'C':
    case 'E':
      if (text) *text = "ISO";
      return 0;
  }
  return 0;
}

std::string FormatDateTime(double millis, const std::vector<Marker>& spec,
                           const Val& timezone) {
  int offset_hours = 0, offset_minutes = 0;
  if (timezone && IsString(timezone)) {
    bool ok = false;
    int offset = ParseIntPrefix(timezone->str, &ok);
    offset_hours = static_cast<int>(std::floor(offset / 100.0));
    offset_minutes = offset % 100;
  }
  double shifted = millis + (60.0 * offset_hours + offset_minutes) * 60000.0;
  std::string result;
  for (const Marker& m : spec) {
    if (m.literal) {
      result += m.value;
      continue;
    }
    std::string text;
    double value = Fragment(shifted, m.component, &text);
    std::string out;
    if (std::string("YMDdFWwXxHhms").find(m.component) != std::string::npos) {
      if (m.component == 'Y' && m.n != -1) value = std::fmod(value, std::pow(10, m.n));
      if (m.has_names) {
        if (m.component == 'M' || m.component == 'x') {
          out = kMonths[static_cast<int>(value) - 1];
        } else if (m.component == 'F') {
          out = kDays[static_cast<int>(value)];
        } else {
          throw Error("D3133").WithValue(MakeString(std::string(1, m.component)));
        }
        if (m.names == Case::kUpper) out = Upper(out);
        else if (m.names == Case::kLower) out = Lower(out);
        if (m.has_width && m.has_max && static_cast<int>(out.size()) > m.max) {
          out = out.substr(0, m.max);
        }
      } else {
        out = FormatInteger(value, m.integer);
      }
    } else if (m.component == 'f') {
      out = FormatInteger(value, m.integer);
    } else if (m.component == 'Z' || m.component == 'z') {
      int offset = offset_hours * 100 + offset_minutes;
      if (m.integer.regular) {
        out = FormatInteger(offset, m.integer);
      } else {
        int digits = m.integer.mandatory_digits;
        if (digits == 1 || digits == 2) {
          out = FormatInteger(offset_hours, m.integer);
          if (offset_minutes != 0) {
            out += ":" + FormatInteger(offset_minutes, AnalyseIntegerPicture("00"));
          }
        } else if (digits == 3 || digits == 4) {
          out = FormatInteger(offset, m.integer);
        } else {
          throw Error("D3134").WithValue(MakeNumber(digits));
        }
      }
      if (offset >= 0) out = "+" + out;
      if (m.component == 'z') out = "GMT" + out;
      if (offset == 0 && m.presentation2 == 't') out = "Z";
    } else if (m.component == 'P') {
      out = m.has_names && m.names == Case::kUpper ? Upper(text) : text;
    } else if (m.component == 'C' || m.component == 'E') {
      out = text;
    } else {
      out = "undefined";
    }
    result += out;
  }
  return result;
}

std::string RegexEscape(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (std::string(".*+?^${}()|[]\\").find(c) != std::string::npos) out += '\\';
    out += c;
  }
  return out;
}

struct PartMatcher {
  std::string regex;
  char component = 0;
  std::function<double(const std::string&)> parse;
};

PartMatcher IntegerMatcher(const IntegerFormat& f) {
  PartMatcher m;
  bool upper = f.letter_case == Case::kUpper;
  switch (f.primary) {
    case Primary::kLetters:
      m.regex = upper ? "[A-Z]+" : "[a-z]+";
      m.parse = [upper](const std::string& v) { return LettersToDecimal(v, upper ? 'A' : 'a'); };
      break;
    case Primary::kRoman:
      m.regex = upper ? "[MDCLXVI]+" : "[mdclxvi]+";
      m.parse = [upper](const std::string& v) { return RomanToDecimal(upper ? v : Upper(v)); };
      break;
    case Primary::kWords: {
      std::string alt;
      for (const auto& [k, v] : WordValues()) alt += k + "|";
      m.regex = "(?:" + alt + "and|[\\-, ])+";
      m.parse = [](const std::string& v) { return WordsToNumber(Lower(v)); };
      break;
    }
    case Primary::kDecimal: {
      m.regex = "[0-9]";
      m.regex += f.parse_width ? "{" + std::to_string(f.parse_width) + "}" : "+";
      if (f.ordinal) m.regex += "(?:th|st|nd|rd)";
      IntegerFormat fc = f;
      m.parse = [fc](const std::string& value) {
        std::string digits = value;
        if (fc.ordinal) digits = digits.substr(0, digits.size() - 2);
        std::u32string d = U32(digits);
        std::u32string kept;
        for (char32_t c : d) {
          bool sep = false;
          if (fc.regular) {
            sep = c == U',';
          } else {
            for (const auto& s : fc.separators) sep = sep || c == s.character;
          }
          if (!sep) kept += fc.zero_code != U'0' ? c - fc.zero_code + U'0' : c;
        }
        bool ok = false;
        int v = ParseIntPrefix(U8(kept), &ok);
        return ok ? static_cast<double>(v) : NAN;
      };
      break;
    }
    case Primary::kSequence:
      throw Error("D3130").WithValue(MakeString(f.token));
  }
  return m;
}

double ParseDateTime(const std::string& timestamp, const std::string& picture,
                     double now, bool* defined) {
  *defined = false;
  std::vector<Marker> spec = AnalyseDateTimePicture(picture);
  std::vector<PartMatcher> parts;
  for (const Marker& part : spec) {
    PartMatcher res;
    if (part.literal) {
      res.regex = RegexEscape(part.value);
    } else if (part.component == 'Z' || part.component == 'z') {
      bool has_sep = part.integer.regular;
      char32_t sep = has_sep ? part.integer.separators[0].character : 0;
      res.regex = part.component == 'z' ? "GMT" : "";
      res.regex += "[-+][0-9]+";
      std::string sep_text;
      if (has_sep) {
        json::AppendUtf8(sep, &sep_text);
        res.regex += RegexEscape(sep_text) + "[0-9]+";
      }
      char comp = part.component;
      res.parse = [comp, has_sep, sep_text](const std::string& in) {
        std::string value = comp == 'z' ? in.substr(3) : in;
        bool ok = false;
        double hours = 0, minutes = 0;
        if (has_sep) {
          size_t at = value.find(sep_text);
          hours = ParseIntPrefix(value.substr(0, at), &ok);
          minutes = ParseIntPrefix(value.substr(at + sep_text.size()), &ok);
        } else {
          size_t digits = value.size() - 1;
          if (digits <= 2) {
            hours = ParseIntPrefix(value, &ok);
          } else {
            hours = ParseIntPrefix(value.substr(0, 3), &ok);
            minutes = ParseIntPrefix(value.substr(3), &ok);
          }
        }
        return hours * 60 + minutes;
      };
    } else if (part.component == 'f') {
      res.regex = "[0-9]+";
      res.parse = [](const std::string& v) {
        return std::strtod(("0." + v.substr(0, 3)).c_str(), nullptr) * 1000;
      };
    } else if (part.has_integer) {
      res = IntegerMatcher(part.integer);
    } else {
      res.regex = "[a-zA-Z]+";
      std::map<std::string, double> lookup;
      if (part.component == 'M' || part.component == 'x') {
        for (int i = 0; i < 12; ++i) {
          std::string name = kMonths[i];
          if (part.has_width && part.has_max) name = name.substr(0, part.max);
          lookup[Lower(name)] = i + 1;
        }
      } else if (part.component == 'F') {
        for (int i = 1; i < 8; ++i) {
          std::string name = kDays[i];
          if (part.has_width && part.has_max) name = name.substr(0, part.max);
          lookup[Lower(name)] = i;
        }
      } else if (part.component == 'P') {
        lookup = {{"am", 0}, {"pm", 1}};
      } else {
        throw Error("D3133").WithValue(MakeString(std::string(1, part.component)));
      }
      res.parse = [lookup](const std::string& v) {
        auto it = lookup.find(Lower(v));
        return it == lookup.end() ? NAN : it->second;
      };
    }
    res.component = part.literal ? 0 : part.component;
    parts.push_back(res);
  }
  std::string full = "^";
  for (const auto& p : parts) full += "(" + p.regex + ")";
  full += "$";
  auto re = CompiledRegex::Compile(full, {.ignore_case = true});
  if (!re.ok()) return 0;
  RegexMatch info;
  // The pattern comes from the caller's picture; bound its backtracking.
  uint64_t steps_left = 25'000'000;
  absl::StatusOr<bool> found = (*re)->Search(timestamp, 0, &info, &steps_left);
  if (!found.ok()) {
    Error e("D3141");
    e.message = std::string(found.status().message());
    throw e;
  }
  if (!*found) return 0;
  std::map<char, double> comps;
  for (size_t i = 0; i < info.groups.size() && i < parts.size(); ++i) {
    const PartMatcher& mp = parts[i];
    if (mp.parse) comps[mp.component] = mp.parse(info.groups[i]);
  }
  if (comps.empty()) return 0;
  auto has = [&](char c) {
    auto it = comps.find(c);
    // JavaScript truthiness of the parsed component
    return it != comps.end() && it->second != 0 && !std::isnan(it->second);
  };
  int mask = 0;
  auto shift = [&](bool bit) { mask = (mask << 1) + (bit ? 1 : 0); };
  auto is_type = [&](int type) { return !(~type & mask) && (type & mask); };
  for (char c : std::string("YXMxWwdD")) shift(has(c));
  bool date_a = is_type(161);
  bool date_b = !date_a && is_type(130);
  bool date_c = is_type(84);
  bool date_d = !date_c && is_type(72);
  mask = 0;
  for (char c : std::string("PHhmsf")) shift(has(c));
  bool time_a = is_type(23);
  bool time_b = !time_a && is_type(47);
  std::string comps_order = std::string(date_b ? "YD" : date_c ? "XxwF" : date_d ? "XWF" : "YMD") +
                            (time_b ? "Phmsf" : "Hmsf");
  bool start_specified = false, end_specified = false;
  for (char part : comps_order) {
    if (comps.find(part) == comps.end()) {
      if (start_specified) {
        comps[part] = std::string("MDd").find(part) != std::string::npos ? 1 : 0;
        end_specified = true;
      } else {
        comps[part] = Fragment(now, part, nullptr);
      }
    } else {
      start_specified = true;
      if (end_specified) throw Error("D3136");
    }
  }
  if (comps['M'] > 0) comps['M'] -= 1;
  else comps['M'] = 0;
  if (date_b) {
    double first = DateUtc(comps['Y'], 0);
    Parts d = Split(first + (comps['d'] - 1) * kMillisInDay);
    comps['M'] = d.month;
    comps['D'] = d.day;
  }
  if (date_c || date_d) throw Error("D3136");
  if (time_b) {
    comps['H'] = comps['h'] == 12 ? 0 : comps['h'];
    if (comps['P'] == 1) comps['H'] += 12;
  }
  for (char c : std::string("YMDHmsf")) {
    if (std::isnan(comps[c])) return 0;
  }
  double millis = DateUtc(comps['Y'], comps['M'], comps['D'], comps['H'],
                          comps['m'], comps['s'], comps['f']);
  double zone = comps.count('Z') ? comps['Z'] : comps.count('z') ? comps['z'] : 0;
  if (zone != 0 && !std::isnan(zone)) millis -= zone * 60000;
  *defined = true;
  return millis;
}

bool ParseIso8601(const std::string& s, double* millis) {
  static const CompiledRegex* const kIso =
      CompiledRegex::Compile(
          "^(\\d{4})(?:-([01]\\d))?(?:-([0-3]\\d))?(?:T([0-2]\\d):([0-5]\\d):([0-5]\\d))?"
          "(?:\\.(\\d+))?(?:([+-])([0-2]\\d):?([0-5]\\d)|(Z))?$",
          {})
          ->release();
  RegexMatch match;
  if (!kIso->FullMatch(s, &match).value_or(false)) return false;
  // Every group matches at least one character, so empty means absent.
  const std::vector<std::string>& m = match.groups;
  auto num = [&](int i, double def) {
    return m[i - 1].empty() ? def : std::strtod(m[i - 1].c_str(), nullptr);
  };
  double frac = 0;
  if (!m[6].empty()) {
    std::string f = (m[6] + "000").substr(0, 3);
    frac = std::strtod(f.c_str(), nullptr);
  }
  double t = DateUtc(num(1, 1970), num(2, 1) - 1, num(3, 1), num(4, 0),
                     num(5, 0), num(6, 0), frac);
  if (!m[7].empty()) {
    double off = num(9, 0) * 60 + num(10, 0);
    t -= (m[7] == "-" ? -off : off) * 60000;
  }
  *millis = t;
  return true;
}

}  // namespace

Val FormatMillis(double millis, const Val& picture, const Val& timezone) {
  static const std::vector<Marker>* const kIso = new std::vector<Marker>(
      AnalyseDateTimePicture("[Y0001]-[M01]-[D01]T[H01]:[m01]:[s01].[f001][Z01:01t]"));
  if (!std::isfinite(millis)) throw Error("D1001").WithValue(MakeNumber(millis));
  if (picture && IsString(picture)) {
    return MakeString(FormatDateTime(millis, AnalyseDateTimePicture(picture->str), timezone));
  }
  return MakeString(FormatDateTime(millis, *kIso, timezone));
}

Val ParseToMillis(const Val& timestamp, const Val& picture, double now_millis) {
  if (!picture) {
    double millis = 0;
    if (!ParseIso8601(timestamp->str, &millis)) {
      throw Error("D3110").WithValue(timestamp);
    }
    return MakeNumber(millis);
  }
  bool defined = false;
  double millis = ParseDateTime(timestamp->str, picture->str, now_millis, &defined);
  if (!defined) return nullptr;
  return MakeNumber(millis);
}

Val FormatIntegerPicture(double value, const Val& picture) {
  IntegerFormat f = AnalyseIntegerPicture(picture ? picture->str : "");
  return MakeString(FormatInteger(std::floor(value), f));
}

Val ParseIntegerPicture(const std::string& value, const Val& picture) {
  IntegerFormat f = AnalyseIntegerPicture(picture ? picture->str : "");
  PartMatcher m = IntegerMatcher(f);
  double d = m.parse(value);
  if (std::isnan(d)) return nullptr;
  return MakeNumber(d);
}

}  // namespace stepflow::jsonata
