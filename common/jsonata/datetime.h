// Picture-string formatting and parsing of numbers and timestamps (XPath F&O
// 3.1 pictures as JSONata implements them). Private to common/jsonata.
#ifndef STEPFLOW_COMMON_JSONATA_DATETIME_H_
#define STEPFLOW_COMMON_JSONATA_DATETIME_H_

#include <string>

#include "common/jsonata/internal.h"

namespace stepflow::jsonata {

// $fromMillis / $now: `picture` and `timezone` may be undefined (nullptr).
Val FormatMillis(double millis, const Val& picture, const Val& timezone);
// $toMillis.
Val ParseToMillis(const Val& timestamp, const Val& picture, double now_millis);
// $formatNumber.
Val FormatNumberPicture(double value, const Val& picture, const Val& options);
// $formatInteger / $parseInteger.
Val FormatIntegerPicture(double value, const Val& picture);
Val ParseIntegerPicture(const std::string& value, const Val& picture);

// $round's half-to-even rounding at `precision` decimal places.
double RoundHalfEven(double value, double precision);

}  // namespace stepflow::jsonata

#endif  // STEPFLOW_COMMON_JSONATA_DATETIME_H_
