package convert

// PackSeptets returns the user data of a GSM 7-bit SM as sent over the air
// or with a "packed" route (data_coding 1 on some SMSCs): the user data
// header as is, fill bits up to the next septet boundary (TS 23.040
// §9.2.3.24), then the septets packed eight to seven octets, least
// significant bit first (TS 23.038 §6.1.2.1.1). udh includes its length
// octet and may be nil.
func PackSeptets(udh, septets []byte) []byte {
	start := 8 * len(udh)
	start += (7 - start%7) % 7 // fill bits
	out := make([]byte, (start+7*len(septets)+7)/8)
	copy(out, udh)
	for i, s := range septets {
		pos := start + 7*i
		out[pos/8] |= (s & 0x7F) << (pos % 8)
		if pos%8 > 1 {
			out[pos/8+1] |= (s & 0x7F) >> (8 - pos%8)
		}
	}
	// TS 23.038 §6.1.2.3.1: when the last octet has 7 spare bits, a phone
	// counting septets from octets would show an "@" (septet 0) there; CR
	// fills them instead and is ignored at the end of a message.
	if end := start + 7*len(septets); len(septets) > 0 && end%8 == 1 {
		out[len(out)-1] |= 0x0D << 1
	}
	return out
}

// UserDataOctets is how many octets of the 140 (TS 23.040 §9.2.3.16) one
// segment takes with its header: 7-bit septets packed after the fill bits,
// or UCS-2 octets after the header.
func UserDataOctets(c Coding, udh, payload []byte) int {
	if c == UCS2 {
		return len(udh) + len(payload)
	}
	start := 8 * len(udh)
	start += (7 - start%7) % 7
	return (start + 7*len(payload) + 7) / 8
}
