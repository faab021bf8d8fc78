#ifndef CETI_CURL_SHIM_H
#define CETI_CURL_SHIM_H
#include <curl/curl.h>

// curl_easy_setopt and curl_easy_getinfo are variadic, which Swift cannot call.
// These give each argument type its own typed entry point.
typedef size_t (*ceti_curl_data_cb)(char *ptr, size_t size, size_t nmemb, void *userdata);
typedef int (*ceti_curl_xferinfo_cb)(void *userdata, curl_off_t dltotal, curl_off_t dlnow,
                                     curl_off_t ultotal, curl_off_t ulnow);

CURLcode ceti_curl_setopt_long(CURL *h, CURLoption opt, long value);
CURLcode ceti_curl_setopt_off(CURL *h, CURLoption opt, curl_off_t value);
CURLcode ceti_curl_setopt_string(CURL *h, CURLoption opt, const char *value);
CURLcode ceti_curl_setopt_pointer(CURL *h, CURLoption opt, void *value);
CURLcode ceti_curl_setopt_slist(CURL *h, CURLoption opt, struct curl_slist *value);
CURLcode ceti_curl_setopt_data_cb(CURL *h, CURLoption opt, ceti_curl_data_cb cb);
CURLcode ceti_curl_setopt_xferinfo_cb(CURL *h, ceti_curl_xferinfo_cb cb);
typedef int (*ceti_curl_seek_cb)(void *userdata, curl_off_t offset, int origin);
CURLcode ceti_curl_setopt_seek_cb(CURL *h, ceti_curl_seek_cb cb);

CURLcode ceti_curl_getinfo_long(CURL *h, CURLINFO info, long *out);
CURLcode ceti_curl_getinfo_off(CURL *h, CURLINFO info, curl_off_t *out);

#endif
