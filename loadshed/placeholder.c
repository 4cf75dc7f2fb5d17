/* replaced by the first real loadshed/ source */
typedef int loadshed_placeholder_t;
