// Employee service, release 1: the "blue" side of the upgrade demo.
// Start it with: npx krypton host --port=8000 --id=blue --sandbox=./blue --services=samples/employee-v1.mjs
import { defineStatefulService, Type, fail } from 'krypton';

export const EmployeeV1 = defineStatefulService({
  factoryLink: '/quickstart/employees',
  documentKind: 'com:example:quickstart:Employee',
  schema: Type.Object({
    name: Type.String({ minLength: 1 }),
    managerLink: Type.Optional(Type.String()),
    location: Type.Optional(Type.String()),
  }),
  create: ({ body }) => {
    if (typeof body.name !== 'string' || body.name === '') fail('VALIDATION', 'name is required');
    return { name: body.name, managerLink: body.managerLink, location: body.location };
  },
  patch: ({ current, body }) => ({ ...current, ...body }),
});
