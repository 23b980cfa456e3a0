/* SPDX-License-Identifier: MIT */
/*
 * The compat header against the running kernel: the feature bits it
 * declares are the ones the kernel reports, and the PAGEMAP_SCAN ABI it
 * declares is accepted.  Skips where the kernel lacks the feature.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "compat/linux_abi.h"

static uint64_t kernel_uffd_features(void)
{
	int fd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | UFFD_USER_MODE_ONLY);
	if (fd < 0)
		fd = (int)syscall(SYS_userfaultfd, O_CLOEXEC);
	if (fd < 0)
		return 0;
	struct uffdio_api api = { .api = UFFD_API, .features = 0 };
	uint64_t features = ioctl(fd, UFFDIO_API, &api) == 0 ? api.features : 0;
	close(fd);
	return features;
}

Test(compat, declared_uffd_features_are_reported_by_a_new_kernel)
{
	uint64_t f = kernel_uffd_features();
	if (!(f & UFFD_FEATURE_MOVE))
		cr_skip_test("kernel older than 6.8 (features %#llx)", (unsigned long long)f);
	cr_assert(f & UFFD_FEATURE_WP_UNPOPULATED);
	cr_assert(f & UFFD_FEATURE_POISON);
	cr_assert(f & UFFD_FEATURE_WP_ASYNC);
	cr_assert(f & UFFD_FEATURE_WP_HUGETLBFS_SHMEM);
}

Test(compat, pagemap_scan_abi_is_accepted)
{
	int fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
	cr_assert(fd >= 0);
	char *p = mmap(NULL, 4 * 4096, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	cr_assert(p != MAP_FAILED);
	p[0] = 1;
	p[2 * 4096] = 1;
	struct page_region regions[4];
	struct pm_scan_arg arg = {
		.size = sizeof(arg),
		.start = (uintptr_t)p,
		.end = (uintptr_t)p + 4 * 4096,
		.vec = (uintptr_t)regions,
		.vec_len = 4,
		.category_mask = PAGE_IS_PRESENT,
		.return_mask = PAGE_IS_PRESENT,
	};
	long n = ioctl(fd, PAGEMAP_SCAN, &arg);
	if (n < 0 && (errno == ENOTTY || errno == EINVAL))
		cr_skip_test("kernel without PAGEMAP_SCAN");
	cr_assert_eq(n, 2, "two present regions, got %ld", n);
	cr_assert_eq(regions[0].start, (uintptr_t)p);
	cr_assert_eq(regions[1].start, (uintptr_t)p + 2 * 4096);
	cr_assert_eq(arg.walk_end, (uintptr_t)p + 4 * 4096);
	close(fd);
}
