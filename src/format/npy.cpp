#include "format/npy.h"

#include <cstring>
#include <regex>

namespace keel::format {

std::string encode_npy(const float* data, const std::vector<int64_t>& shape) {
  std::string dims;
  size_t n = 1;
  for (int64_t d : shape) {
    dims += std::to_string(d) + ", ";
    n *= static_cast<size_t>(d);
  }
  if (shape.size() > 1) dims.resize(dims.size() - 2);
  std::string header = "{'descr': '<f4', 'fortran_order': False, 'shape': (" + dims + "), }";
  // magic(6) + version(2) + header_len(2) + header, padded with spaces to a multiple of 64, ending in \n.
  size_t total = 10 + header.size() + 1;
  header.append((64 - total % 64) % 64, ' ');
  header += '\n';
  std::string out = "\x93NUMPY";
  out += '\x01';
  out += '\x00';
  uint16_t hlen = static_cast<uint16_t>(header.size());
  out += static_cast<char>(hlen & 0xff);
  out += static_cast<char>(hlen >> 8);
  out += header;
  out.append(reinterpret_cast<const char*>(data), n * sizeof(float));
  return out;
}

Status write_npy(env::Env* env, const std::string& path, const float* data, const std::vector<int64_t>& shape) {
  return env->write_file_atomic(path, encode_npy(data, shape));
}

Result<NpyArray> read_npy(env::Env* env, const std::string& path) {
  KEEL_ASSIGN_OR_RETURN(std::string bytes, env->read_file(path));
  if (bytes.size() < 10 || bytes.compare(0, 6, "\x93NUMPY") != 0)
    return corruption("{}: not a .npy file (bad magic)", path);
  size_t hlen = static_cast<uint8_t>(bytes[8]) | (static_cast<size_t>(static_cast<uint8_t>(bytes[9])) << 8);
  if (10 + hlen > bytes.size()) return corruption("{}: header runs past the end of the file", path);
  std::string header = bytes.substr(10, hlen);
  if (header.find("'<f4'") == std::string::npos)
    return unsupported("{}: only little-endian float32 arrays are supported (header {})", path, header);
  if (header.find("'fortran_order': False") == std::string::npos)
    return unsupported("{}: only C-order arrays are supported", path);
  std::smatch m;
  if (!std::regex_search(header, m, std::regex("'shape': \\(([0-9, ]*)\\)")))
    return corruption("{}: no shape in header {}", path, header);
  NpyArray a;
  std::string dims = m[1];
  size_t n = 1;
  for (size_t i = 0; i < dims.size();) {
    while (i < dims.size() && (dims[i] == ' ' || dims[i] == ',')) i++;
    if (i >= dims.size()) break;
    size_t j = i;
    while (j < dims.size() && std::isdigit(static_cast<unsigned char>(dims[j]))) j++;
    a.shape.push_back(std::stoll(dims.substr(i, j - i)));
    n *= static_cast<size_t>(a.shape.back());
    i = j;
  }
  if (10 + hlen + n * 4 != bytes.size())
    return corruption("{}: shape needs {} bytes of data but the file holds {}", path, n * 4,
                      bytes.size() - 10 - hlen);
  a.data.resize(n);
  std::memcpy(a.data.data(), bytes.data() + 10 + hlen, n * 4);
  return a;
}

}  // namespace keel::format
