/* replaced by the first real api/ source */
typedef int api_placeholder_t;
