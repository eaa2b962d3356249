// bitmap_io.hpp — roaring bitmaps in snapshots (snapshot.hpp).
//
// A bitmap is written in CRoaring's portable format (the one the Java and Go libraries
// share), as a length-prefixed string. Reading checks the length against the bytes left,
// deserializes with the bounded ("safe") reader, and then checks what it built: the safe
// reader only promises not to read past its buffer, and a bitmap whose containers break
// CRoaring's invariants (a run past 65535, unsorted keys) can make later operations
// write out of bounds. (Defined in tag_column.cpp.)
#pragma once

#include "cdp/tags.hpp"
#include "snapshot.hpp"

namespace cdp {

void SaveBitmap(snap::Writer& w, const Bitmap& b);
// Reads what SaveBitmap wrote into b. False, with r failed and b empty, when the bytes
// are not exactly one well-formed bitmap.
bool LoadBitmap(snap::Reader& r, Bitmap& b);

}  // namespace cdp
