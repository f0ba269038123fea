// Employee service, release 2: the "green" side. It adds a required `email` field and a new
// `/quickstart/mailboxes` factory, and ships the transformation service the migration task calls
// to turn v1 employees into v2 documents (one v1 employee becomes an employee and a mailbox).
// Start it with: npx krypton host --port=8001 --id=green --sandbox=./green --services=samples/employee-v2.mjs
import { defineStatefulService, defineStatelessService, Type, fail } from 'krypton';

const EMAIL = /^[^@\s]+@[^@\s]+$/;

export const EmployeeV2 = defineStatefulService({
  factoryLink: '/quickstart/employees',
  documentKind: 'com:example:quickstart:Employee',
  schema: Type.Object({
    name: Type.String({ minLength: 1 }),
    email: Type.String({ pattern: EMAIL.source }),
    managerLink: Type.Optional(Type.String()),
    location: Type.Optional(Type.String()),
  }),
  create: ({ body }) => {
    if (typeof body.name !== 'string' || body.name === '') fail('VALIDATION', 'name is required');
    if (typeof body.email !== 'string' || !EMAIL.test(body.email)) fail('VALIDATION', 'email is required in release 2');
    return { name: body.name, email: body.email, managerLink: body.managerLink, location: body.location };
  },
  patch: ({ current, body }) => ({ ...current, ...body }),
});

export const MailboxV2 = defineStatefulService({
  factoryLink: '/quickstart/mailboxes',
  documentKind: 'com:example:quickstart:Mailbox',
  schema: Type.Object({ address: Type.String(), ownerLink: Type.String() }),
});

/** v1 → v2: derive the email from the name; also create the employee's mailbox. */
export function transformEmployee(v1, employeesLink) {
  const id = String(v1.documentSelfLink).replace(/^.*\//, '');
  const email = `${
    String(v1.name)
      .toLowerCase()
      .replace(/[^a-z0-9]+/g, '.')
      .replace(/^\.|\.$/g, '') || id
  }@example.com`;
  const employee = { ...v1, email };
  const mailbox = { address: email, ownerLink: `${employeesLink}/${id}`, documentSelfLink: `/${id}`, documentUpdateTimeMicros: v1.documentUpdateTimeMicros };
  return { [JSON.stringify(employee)]: employeesLink, [JSON.stringify(mailbox)]: '/quickstart/mailboxes' };
}

/** The transformation service, answering both of Xenon's contracts. */
export const EmployeeTransform = defineStatelessService({
  link: '/quickstart/employee-transform',
  handlers: {
    POST: (op) => {
      const body = op.bodyObject() ?? {};
      if (typeof body.originalDocument === 'string') {
        // USE_TRANSFORM_REQUEST: TransformRequest -> TransformResponse
        return { destinationLinks: transformEmployee(JSON.parse(body.originalDocument), body.destinationLink) };
      }
      // Default contract: { "<document json>": "<factory link>" } -> same shape
      const out = {};
      for (const [json, factory] of Object.entries(body)) Object.assign(out, transformEmployee(JSON.parse(json), factory));
      return out;
    },
  },
});
